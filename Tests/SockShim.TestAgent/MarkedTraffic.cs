using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using SockShim;
using Tmds.Linux;
using static SockShim.Berkeley;

/// <summary>traffic SERVER FRONT-END [POOL]: one TCP connection (its SYN, a line of data) and one
/// UDP datagram to SERVER, through one front end: <c>tuple</c> (TupleSocket), <c>berkeley</c>
/// (socket(..., tuple_pool(POOL)) of the Berkeley API) or <c>plain</c> (ordinary sockets, for a
/// run under the launcher). Prints "tcp LOCAL" and "udp LOCAL", the kernel's getsockname.</summary>
internal static unsafe class MarkedTraffic
{
    public static int Run(IPEndPoint server, string frontEnd, string? pool)
    {
        try
        {
            return frontEnd switch
            {
                "berkeley" => ThroughBerkeley(server, pool!),
                "tuple" or "plain" => ThroughSockets(server, frontEnd == "tuple" ? (pool is null ? SocketTuple.New : SocketTuple.FromPool(pool)) : (SocketTuple?)null),
                _ => Usage(frontEnd),
            };
        }
        catch (SocketException ex)
        {
            Console.WriteLine($"error {ex.SocketErrorCode} {ex.Message}");
            return 1;
        }
    }

    private static int Usage(string frontEnd)
    {
        Console.Error.WriteLine($"traffic: front end '{frontEnd}' is not tuple, berkeley or plain");
        return 2;
    }

    private static int ThroughSockets(IPEndPoint server, SocketTuple? tuple)
    {
        Socket Make(SocketType type, ProtocolType protocol) =>
            tuple is { } t ? new TupleSocket(server.AddressFamily, type, protocol, t) : new Socket(server.AddressFamily, type, protocol);
        using (var tcp = Make(SocketType.Stream, ProtocolType.Tcp))
        {
            tcp.Connect(server);
            tcp.Send(Encoding.ASCII.GetBytes("marked data\n"));
            tcp.ReceiveTimeout = 5000;
            tcp.Receive(new byte[256]);
            Console.WriteLine($"tcp {((IPEndPoint)tcp.LocalEndPoint!).Address}");
        }
        using (var udp = Make(SocketType.Dgram, ProtocolType.Udp))
        {
            udp.SendTo(Encoding.ASCII.GetBytes("marked datagram\n"), server);
            Console.WriteLine($"udp {((IPEndPoint)udp.LocalEndPoint!).Address}");
        }
        return 0;
    }

    private static int ThroughBerkeley(IPEndPoint server, string pool)
    {
        int tuple = tuple_pool(pool);
        if (tuple < 0) { Console.WriteLine($"error tuple_pool errno {errno}"); return 1; }
        Span<byte> to = stackalloc byte[16];
        to.Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(to, 2); // AF_INET
        BinaryPrimitives.WriteUInt16BigEndian(to[2..], (ushort)server.Port);
        server.Address.TryWriteBytes(to[4..], out _);
        var data = Encoding.ASCII.GetBytes("marked data\n");
        Span<byte> local = stackalloc byte[16];
        foreach (var (type, name) in new[] { (1, "tcp"), (2, "udp") }) // SOCK_STREAM, SOCK_DGRAM
        {
            int fd = socket(2, type, 0, tuple);
            if (fd < 0) { Console.WriteLine($"error socket errno {errno}"); return 1; }
            fixed (byte* p = to)
            fixed (byte* d = data)
            {
                if (type == 1)
                {
                    if (connect(fd, (sockaddr*)p, 16) != 0) { Console.WriteLine($"error connect errno {errno}"); return 1; }
                    if (send(fd, d, data.Length, 0) < 0) { Console.WriteLine($"error send errno {errno}"); return 1; }
                }
                else if (sendto(fd, d, data.Length, 0, (sockaddr*)p, 16) < 0) { Console.WriteLine($"error sendto errno {errno}"); return 1; }
            }
            uint len = 16;
            fixed (byte* n = local)
                if (getsockname(fd, (sockaddr*)n, (socklen_t*)&len) != 0) { Console.WriteLine($"error getsockname errno {errno}"); return 1; }
            Console.WriteLine($"{name} {new IPAddress(local.Slice(4, 4))}");
            close(fd);
        }
        return 0;
    }
}
