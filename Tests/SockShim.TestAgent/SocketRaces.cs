using System.Net;
using System.Net.Sockets;

/// <summary>races SERVER N: run under the launcher (mode all). N times, one thread connects a
/// fresh socket to SERVER while another disposes it; then N times, two threads send the first
/// datagrams of one fresh UDP socket to SERVER at once. Prints "dispose-race unexpected K" (any
/// exception but the ones a disposed socket throws: ObjectDisposedException, SocketException)
/// and "first-sends failed K" (sends that threw), lets the GC finalize what is left, prints
/// "done" and waits for stdin to close, so that the test can read the pool's table meanwhile.</summary>
internal static class SocketRaces
{
    public static int Run(IPEndPoint server, int n)
    {
        int unexpected = 0, failed = 0;
        using var barrier = new Barrier(2);
        for (int i = 0; i < n; i++)
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            var connect = Task.Run(() =>
            {
                barrier.SignalAndWait();
                try { s.Connect(server); }
                catch (Exception ex) when (ex is ObjectDisposedException or SocketException) { }
                catch (Exception ex) { Interlocked.Increment(ref unexpected); Console.Error.WriteLine($"dispose-race: {ex}"); }
            });
            barrier.SignalAndWait();
            s.Dispose();
            if (!connect.Wait(TimeSpan.FromSeconds(30))) { Console.WriteLine("dispose-race connect hung"); return 1; }
        }
        Console.WriteLine($"dispose-race unexpected {unexpected}");
        for (int i = 0; i < n; i++)
        {
            using var u = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            void Send()
            {
                barrier.SignalAndWait();
                try { u.SendTo("race\n"u8, server); }
                catch (Exception ex) { Interlocked.Increment(ref failed); Console.Error.WriteLine($"first-sends: {ex.Message}"); }
            }
            var other = Task.Run(Send);
            Send();
            if (!other.Wait(TimeSpan.FromSeconds(30))) { Console.WriteLine("first-sends hung"); return 1; }
        }
        Console.WriteLine($"first-sends failed {failed}");
        for (int i = 0; i < 3; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        Console.WriteLine("done");
        Console.Out.Flush();
        Console.In.ReadToEnd();
        return 0;
    }
}
