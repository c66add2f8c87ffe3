using System.Net;
using System.Net.Sockets;

/// <summary>races N: run under the launcher (mode all). N times, one thread connects a fresh
/// socket while another disposes it; then N times, two threads send the first datagrams of one
/// fresh UDP socket at once. Both go to a listener and a datagram sink of its own on 127.0.0.1
/// (thousands of connections and datagrams would fill the output pipe of a test's echo server,
/// which prints each peer, and stall it for the tests after). Prints "dispose-race unexpected K" (any
/// exception but the ones a disposed socket throws: ObjectDisposedException, SocketException)
/// and "first-sends failed K" (sends that threw), lets the GC finalize what is left, prints
/// "done" and waits for stdin to close, so that the test can read the pool's table meanwhile.</summary>
internal static class SocketRaces
{
    public static int Run(int n)
    {
        int unexpected = 0, failed = 0;
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(n);
        var server = (IPEndPoint)listener.LocalEndPoint!;
        // Accepts and drops until the listener is closed at the end.
        var accepting = Task.Run(() => { try { while (true) listener.Accept().Dispose(); } catch (Exception ex) when (ex is SocketException or ObjectDisposedException) { } });
        using var sink = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        sink.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var datagrams = (IPEndPoint)sink.LocalEndPoint!;
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
                try { u.SendTo("race\n"u8, datagrams); }
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
