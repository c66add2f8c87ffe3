using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace SockShim;

/// <summary>sockaddr_in / sockaddr_in6 as IPEndPoint and back, with checked lengths.</summary>
internal static unsafe class SockAddr
{
    public const int AF_INET = 2, AF_INET6 = 10;
    public const int SizeIn = 16, SizeIn6 = 28;

    public static IPEndPoint? Read(byte* p, int length)
    {
        if (p is null || length < 2) return null;
        int family = *(ushort*)p;
        if (family == AF_INET && length >= SizeIn)
            return new IPEndPoint(new IPAddress(new ReadOnlySpan<byte>(p + 4, 4)), BinaryPrimitives.ReadUInt16BigEndian(new ReadOnlySpan<byte>(p + 2, 2)));
        if (family == AF_INET6 && length >= SizeIn6)
            return new IPEndPoint(new IPAddress(new ReadOnlySpan<byte>(p + 8, 16), BinaryPrimitives.ReadUInt32LittleEndian(new ReadOnlySpan<byte>(p + 24, 4))),
                BinaryPrimitives.ReadUInt16BigEndian(new ReadOnlySpan<byte>(p + 2, 2)));
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
            BinaryPrimitives.WriteUInt16LittleEndian(buffer, AF_INET);
            BinaryPrimitives.WriteUInt16BigEndian(buffer[2..], (ushort)endpoint.Port);
            address.TryWriteBytes(buffer.Slice(4, 4), out _);
            return SizeIn;
        }
        BinaryPrimitives.WriteUInt16LittleEndian(buffer, AF_INET6);
        BinaryPrimitives.WriteUInt16BigEndian(buffer[2..], (ushort)endpoint.Port);
        address.TryWriteBytes(buffer.Slice(8, 16), out _);
        return SizeIn6;
    }
}
