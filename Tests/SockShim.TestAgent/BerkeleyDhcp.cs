using System.Buffers.Binary;
using System.Net;
using Tmds.Linux;
using static SockShim.Berkeley;

/// <summary>berkeley-dhcp N SERVER: N descriptors from socket(AF_INET, SOCK_STREAM, 0, TUPLE_DHCP),
/// each connected to SERVER; prints "fd ADDRESS" (getsockname) for each and "held", waits for a
/// line on stdin, then closes them all and prints "closed".</summary>
internal static unsafe class BerkeleyDhcp
{
    public static int Run(int count, IPEndPoint server)
    {
        var fds = new List<int>();
        Span<byte> to = stackalloc byte[16];
        to.Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(to, 2); // AF_INET
        BinaryPrimitives.WriteUInt16BigEndian(to[2..], (ushort)server.Port);
        server.Address.TryWriteBytes(to[4..], out _);
        Span<byte> name = stackalloc byte[16];
        for (int i = 0; i < count; i++)
        {
            int fd = socket(2, 1, 0, TUPLE_DHCP); // AF_INET, SOCK_STREAM
            if (fd < 0) { Console.WriteLine($"error socket errno {errno}"); return 1; }
            fixed (byte* p = to)
                if (connect(fd, (sockaddr*)p, 16) != 0) { Console.WriteLine($"error connect errno {errno}"); return 1; }
            uint len = 16;
            fixed (byte* n = name)
                if (getsockname(fd, (sockaddr*)n, (socklen_t*)&len) != 0) { Console.WriteLine($"error getsockname errno {errno}"); return 1; }
            Console.WriteLine($"fd {new IPAddress(name.Slice(4, 4))}");
            fds.Add(fd);
        }
        Console.WriteLine("held");
        Console.Out.Flush();
        Console.ReadLine();
        foreach (int fd in fds) close(fd);
        Console.WriteLine("closed");
        return 0;
    }
}
