using System.Net;
using System.Net.Sockets;

/// <summary>races N: run under the launcher (mode all). N times, one thread connects a fresh
/// socket while another disposes it; then N times, two threads send the first datagrams of one
/// fresh UDP socket at once; then N times, one thread binds a fresh UDP socket to the wildcard
/// (its own address under --wildcard-bind own) while another disposes it. All go to a listener and a datagram sink of its own on 127.0.0.1
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
        // A wildcard bind (given its own address under --wildcard-bind own) racing Dispose.
        int bindUnexpected = 0;
        for (int i = 0; i < n; i++)
        {
            var b = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            int delay = i % 64 * 50; // the dispose lands at a different point of the bind each round
            var bind = Task.Run(() =>
            {
                barrier.SignalAndWait();
                try { b.Bind(new IPEndPoint(IPAddress.Any, 0)); }
                catch (Exception ex) when (ex is ObjectDisposedException or SocketException) { }
                catch (Exception ex) { Interlocked.Increment(ref bindUnexpected); Console.Error.WriteLine($"bind-race: {ex}"); }
            });
            barrier.SignalAndWait();
            Thread.SpinWait(delay);
            b.Dispose();
            if (!bind.Wait(TimeSpan.FromSeconds(30))) { Console.WriteLine("bind-race hung"); return 1; }
        }
        Console.WriteLine($"bind-race unexpected {bindUnexpected}");
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

/// <summary>fd-reuse: run under the launcher (mode all), under strace delaying every bind(2):
/// one thread connects a socket while another disposes it 100 ms later and makes a new socket at
/// once, which may be given the same descriptor number. Prints "first ..." (what the first
/// connect threw, or "connected"), "new before-connect LOCAL" (the new socket's own address
/// before it is used: "unbound" unless something bound it) and "new connected LOCAL" or
/// "new failed ...".</summary>
internal static class DescriptorReuse
{
    public static int Run()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(16);
        var target = (IPEndPoint)listener.LocalEndPoint!;
        _ = Task.Run(() => { try { while (true) listener.Accept().Dispose(); } catch (Exception ex) when (ex is SocketException or ObjectDisposedException) { } });
        using (var warm = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)) warm.Connect(target); // the stack is built
        var first = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        string outcome = "connected";
        var connecting = new Thread(() => { try { first.Connect(target); } catch (Exception ex) { outcome = ex.GetType().Name; } });
        connecting.Start();
        Thread.Sleep(100);
        first.Dispose();
        using var made = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        connecting.Join();
        Console.WriteLine($"first {outcome}");
        Console.WriteLine($"new before-connect {Local(made)}");
        try
        {
            made.Connect(target);
            Console.WriteLine($"new connected {made.LocalEndPoint}");
        }
        catch (SocketException ex) { Console.WriteLine($"new failed {ex.SocketErrorCode} {ex.Message}"); }
        return 0;
    }

    // getsockname on the descriptor itself: Socket knows nothing of a bind made under it.
    private static unsafe string Local(Socket s)
    {
        var buffer = stackalloc byte[28];
        uint length = 28;
        if (Tmds.Linux.LibC.getsockname((int)s.SafeHandle.DangerousGetHandle(), (Tmds.Linux.sockaddr*)buffer, (Tmds.Linux.socklen_t*)&length) != 0) return "error";
        var address = new IPAddress(new ReadOnlySpan<byte>(buffer + 4, 4));
        int port = buffer[2] << 8 | buffer[3];
        return address.Equals(IPAddress.Any) && port == 0 ? "unbound" : $"{address}:{port}";
    }
}
