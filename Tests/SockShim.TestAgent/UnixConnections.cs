using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

/// <summary>
/// A hostile client of `sockshim serve`: opens <c>count</c> connections to its socket and sends
/// nothing; or (partial) the start of a request without its end on every other one; or (chatty)
/// "DESCRIBE nic" on each once a second, for at most a minute; or (bogus) malformed requests on
/// each as fast as it can, for at most ten seconds; or (deaf) "DESCRIBE nic" on each as fast as
/// it can, never reading an answer, for at most a minute; or (greedy) "ACQUIRE nic" 25 times on
/// each, printing "answer I LINE" for each answer, then holding what it got. Prints "opened N" once all are connected,
/// then "closed I MS TEXT" when the helper closes connection I (MS after it connected; TEXT what
/// the helper said, its lines joined by " | "), and exits at a line or end of stdin.
/// </summary>
internal static class UnixConnections
{
    public static int Run(string path, int count, string mode)
    {
        bool partial = mode == "partial";
        var open = new List<Task>();
        for (int i = 0; i < count; i++)
        {
            var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try { s.Connect(new UnixDomainSocketEndPoint(path)); }
            catch (SocketException ex)
            {
                Console.WriteLine($"connect-failed {i} {ex.SocketErrorCode}");
                s.Dispose();
                continue;
            }
            var since = Stopwatch.StartNew();
            // A request cut short: what a client that stops mid-message leaves.
            // (The helper may have refused and closed it already: then the send fails.)
            if (partial && i % 2 == 1) try { s.Send("ACQUIRE ni"u8); } catch (SocketException) { }
            int index = i;
            if (mode == "deaf")
            {
                // Asks and asks, never reading an answer: the helper's writes fill the buffers.
                s.ReceiveBufferSize = 4096;
                _ = Task.Run(() =>
                {
                    var sending = Stopwatch.StartNew();
                    try { while (sending.Elapsed < TimeSpan.FromMinutes(1)) s.Send("DESCRIBE nic\n"u8); }
                    catch (SocketException) { Console.WriteLine($"closed {index} {since.ElapsedMilliseconds} deaf"); }
                });
                open.Add(Task.CompletedTask);
                continue;
            }
            if (mode == "greedy")
            {
                // Asks for an address 25 times on one connection, reading each answer, then holds.
                var reader = new StreamReader(new NetworkStream(s), Encoding.ASCII);
                for (int n = 0; n < 25; n++)
                {
                    s.Send("ACQUIRE nic\n"u8);
                    Console.WriteLine($"answer {index} {reader.ReadLine()}");
                }
            }
            if (mode is "chatty" or "bogus")
            {
                byte[] line = mode == "chatty" ? "DESCRIBE nic\n"u8.ToArray() : "BOGUS x\n"u8.ToArray();
                var pause = mode == "chatty" ? TimeSpan.FromSeconds(1) : TimeSpan.Zero;
                var until = mode == "chatty" ? TimeSpan.FromMinutes(1) : TimeSpan.FromSeconds(10);
                _ = Task.Run(async () =>
                {
                    var sending = Stopwatch.StartNew();
                    try
                    {
                        while (sending.Elapsed < until)
                        {
                            await s.SendAsync(line, SocketFlags.None);
                            if (pause > TimeSpan.Zero) await Task.Delay(pause);
                        }
                    }
                    catch (Exception ex) when (ex is SocketException or ObjectDisposedException) { } // closed by the helper
                });
            }
            open.Add(Task.Run(async () =>
            {
                var text = new StringBuilder();
                var buffer = new byte[1024];
                try
                {
                    int n;
                    while ((n = await s.ReceiveAsync(buffer, SocketFlags.None)) > 0) text.Append(Encoding.ASCII.GetString(buffer, 0, n));
                }
                catch (SocketException) { }
                Console.WriteLine($"closed {index} {since.ElapsedMilliseconds} {text.ToString().Trim().Replace("\n", " | ")}");
                s.Dispose();
            }));
        }
        Console.WriteLine($"opened {open.Count}");
        Console.ReadLine();
        return 0;
    }
}
