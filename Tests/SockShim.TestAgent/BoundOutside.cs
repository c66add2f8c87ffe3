using System.Net;
using System.Net.Sockets;
using System.Text;
using Tmds.Linux;

/// <summary>bound-outside SERVER: ordinary sockets bound where Socket does not see it, run under
/// the launcher (mode all). Prints "LABEL seen PEER" for each (PEER: what the server saw):
/// "no-port", a TCP socket the app bound through its descriptor to 127.0.0.9 with
/// IP_BIND_ADDRESS_NO_PORT (the kernel reports the address with port 0 until connect);
/// "port", one bound the same way to 127.0.0.10 with the port picked at bind; "retried", a UDP
/// socket whose first datagram failed (too large) after SockShim had bound it, sent again;
/// "autobound", a UDP socket whose first datagram (a broadcast without SO_BROADCAST, which
/// SockShim leaves alone) failed after the kernel had bound it to the wildcard, sent again to SERVER.</summary>
internal static unsafe class BoundOutside
{
    public static int Run(IPEndPoint server)
    {
        foreach (var (label, address, noPort) in new[] { ("no-port", "127.0.0.9", true), ("port", "127.0.0.10", false) })
        {
            using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            int fd = (int)s.Handle;
            int one = 1;
            if (noPort && LibC.setsockopt(fd, LibC.SOL_IP, LibC.IP_BIND_ADDRESS_NO_PORT, &one, sizeof(int)) != 0) return Fail(label, "setsockopt");
            var sin = new sockaddr_in { sin_family = (ushort)LibC.AF_INET };
            IPAddress.Parse(address).TryWriteBytes(new Span<byte>(&sin.sin_addr, 4), out _);
            if (LibC.bind(fd, (sockaddr*)&sin, (uint)sizeof(sockaddr_in)) != 0) return Fail(label, "bind");
            s.Connect(server);
            s.Send("hello\n"u8);
            Console.WriteLine($"{label} seen {Reply(s)}");
        }
        using (var u = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp))
        {
            try
            {
                u.SendTo(new byte[70_000], server);
                Console.WriteLine("retried the first datagram went out");
                return 1;
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.MessageSize) { }
            u.SendTo("hello\n"u8, server);
            u.ReceiveTimeout = 10_000;
            Console.WriteLine($"retried seen {Reply(u)}");
        }
        using (var u = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp))
        {
            try
            {
                u.SendTo("hello\n"u8, new IPEndPoint(IPAddress.Broadcast, 9));
                Console.WriteLine("autobound the broadcast went out");
                return 1;
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.AccessDenied) { }
            u.SendTo("hello\n"u8, server);
            Console.WriteLine($"autobound seen {Reply(u)}");
        }
        return 0;
    }

    /// <summary>use-after-dispose SERVER N: N sockets disposed and then used (a datagram to
    /// SERVER, a connect): prints the exception each use threw ("sendto ObjectDisposedException"),
    /// then "done", and waits for stdin to close.</summary>
    public static int UseAfterDispose(IPEndPoint server, int n)
    {
        for (int i = 0; i < n; i++)
        {
            var u = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            u.Dispose();
            try { u.SendTo("hello\n"u8, server); Console.WriteLine("sendto sent"); }
            catch (Exception ex) { Console.WriteLine($"sendto {ex.GetType().Name}"); }
            var t = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            t.Dispose();
            try { t.Connect(server); Console.WriteLine("connect connected"); }
            catch (Exception ex) { Console.WriteLine($"connect {ex.GetType().Name}"); }
        }
        Console.WriteLine("done");
        Console.Out.Flush();
        Console.In.ReadToEnd();
        return 0;
    }

    private static string Reply(Socket s)
    {
        s.ReceiveTimeout = 10_000;
        var buffer = new byte[200];
        int n = s.Receive(buffer);
        return Encoding.ASCII.GetString(buffer, 0, n).Trim().Replace("you are ", "");
    }

    private static int Fail(string label, string call)
    {
        Console.WriteLine($"{label} {call} failed: errno {LibC.errno}");
        return 1;
    }
}
