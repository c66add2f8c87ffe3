using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

/// <summary>
/// A hostile client of `sockshim serve`: opens <c>count</c> connections to its socket and sends
/// nothing, or (partial) the start of a request without its end on every other one. Prints
/// "opened N" once all are connected, then "closed I MS TEXT" when the helper closes connection I
/// (MS after it connected; TEXT what the helper said first), and exits at a line or end of stdin.
/// </summary>
internal static class UnixConnections
{
    public static int Run(string path, int count, bool partial)
    {
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
                Console.WriteLine($"closed {index} {since.ElapsedMilliseconds} {text.ToString().Trim()}");
                s.Dispose();
            }));
        }
        Console.WriteLine($"opened {open.Count}");
        Console.ReadLine();
        return 0;
    }
}
