using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace SockShim;

/// <summary>sockaddr_in / sockaddr_in6 as IPEndPoint and back, with checked lengths.</summary>
internal static unsafe class SockAddr
{
    public static readonly int AF_INET = Tmds.Linux.LibC.AF_INET, AF_INET6 = Tmds.Linux.LibC.AF_INET6;
    public static readonly int SizeIn = sizeof(Tmds.Linux.sockaddr_in), SizeIn6 = sizeof(Tmds.Linux.sockaddr_in6);
    // Offsets of netinet/in.h: family, port (network order), then the address (after the IPv6
    // flow label), and IPv6's scope id.
    private const int OffPort = 2, OffAddress4 = 4, OffAddress6 = 8, OffScope6 = 24;

    public static IPEndPoint? Read(byte* p, int length)
    {
        if (p is null || length < 2) return null;
        int family = *(ushort*)p;
        if (family == AF_INET && length >= SizeIn)
            return new IPEndPoint(new IPAddress(new ReadOnlySpan<byte>(p + OffAddress4, 4)), BinaryPrimitives.ReadUInt16BigEndian(new ReadOnlySpan<byte>(p + OffPort, 2)));
        if (family == AF_INET6 && length >= SizeIn6)
            return new IPEndPoint(new IPAddress(new ReadOnlySpan<byte>(p + OffAddress6, 16), BinaryPrimitives.ReadUInt32LittleEndian(new ReadOnlySpan<byte>(p + OffScope6, 4))),
                BinaryPrimitives.ReadUInt16BigEndian(new ReadOnlySpan<byte>(p + OffPort, 2)));
        return null;
    }

    /// <summary>Writes <paramref name="endpoint"/> for a socket of <paramref name="socketFamily"/>
    /// (an IPv4 address on an IPv6 socket becomes ::ffff:a.b.c.d); returns the length.</summary>
    public static int Write(Span<byte> buffer, IPEndPoint endpoint, int socketFamily)
    {
        buffer.Clear();
        var address = endpoint.Address;
        if (socketFamily == AF_INET6 && address.AddressFamily == AddressFamily.InterNetwork) address = address.MapToIPv6();
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(buffer, (ushort)AF_INET);
            BinaryPrimitives.WriteUInt16BigEndian(buffer[OffPort..], (ushort)endpoint.Port);
            address.TryWriteBytes(buffer.Slice(OffAddress4, 4), out _);
            return SizeIn;
        }
        BinaryPrimitives.WriteUInt16LittleEndian(buffer, (ushort)AF_INET6);
        BinaryPrimitives.WriteUInt16BigEndian(buffer[OffPort..], (ushort)endpoint.Port);
        address.TryWriteBytes(buffer.Slice(OffAddress6, 16), out _);
        return SizeIn6;
    }
}
