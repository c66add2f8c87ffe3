using System.Runtime.InteropServices;
using SockShim.Stack.Interop;

namespace SockShim.Stack.Wire;

// Netlink speaks the host's byte order, and each struct below has its C layout (sequential,
// naturally aligned; checked against the headers by a test), so each is read and written whole.

/// <summary>nlmsghdr: the 16-byte header of every netlink message.</summary>
internal readonly record struct NetlinkHeader(uint Length, ushort Type, ushort Flags, uint Sequence, uint PortId)
{
    public static bool TryParse(ReadOnlySpan<byte> buffer, out NetlinkHeader header) =>
        // A length shorter than the header or past the buffer is a malformed message.
        MemoryMarshal.TryRead(buffer, out header) && header.Length >= netlink.NLMSG_HDRLEN && header.Length <= buffer.Length;

    public void Emit(Span<byte> buffer) => MemoryMarshal.Write(buffer, in this);
}

/// <summary>Builds one netlink request: header, a fixed payload, then attributes, each aligned.</summary>
internal ref struct NetlinkRequestWriter
{
    private readonly Span<byte> _buffer;
    private int _length;

    public NetlinkRequestWriter(Span<byte> buffer, ushort type, ushort flags, uint sequence)
    {
        _buffer = buffer;
        _buffer.Clear();
        new NetlinkHeader(0, type, flags, sequence, 0).Emit(_buffer);
        _length = netlink.NLMSG_HDRLEN;
    }

    /// <summary>Room for a fixed payload (ifaddrmsg, rtmsg) to be written by the caller.</summary>
    public Span<byte> Payload(int size)
    {
        var span = _buffer.Slice(_length, size);
        _length += netlink.NLMSG_ALIGN(size);
        return span;
    }

    public void Attribute(ushort type, scoped ReadOnlySpan<byte> value)
    {
        int len = rtnetlink.RTATTR_HDRLEN + value.Length;
        if (_length + rtnetlink.RTA_ALIGN(len) > _buffer.Length) throw new ArgumentException("netlink request buffer too small");
        MemoryMarshal.Write(_buffer[_length..], (ushort)len);
        MemoryMarshal.Write(_buffer[(_length + 2)..], type);
        value.CopyTo(_buffer[(_length + rtnetlink.RTATTR_HDRLEN)..]);
        _length += rtnetlink.RTA_ALIGN(len);
    }

    public void Attribute(ushort type, uint value) => Attribute(type, MemoryMarshal.AsBytes(new ReadOnlySpan<uint>(in value)));

    /// <summary>Writes the final length into the header; returns the message.</summary>
    public Span<byte> Finish()
    {
        MemoryMarshal.Write(_buffer, (uint)_length);
        return _buffer[.._length];
    }
}

/// <summary>Walks the rtattr list of a message payload, stopping at the first malformed one.</summary>
internal ref struct RouteAttributeReader(ReadOnlySpan<byte> attributes)
{
    private ReadOnlySpan<byte> _rest = attributes;

    public bool Next(out ushort type, out ReadOnlySpan<byte> value)
    {
        type = 0;
        value = default;
        if (_rest.Length < rtnetlink.RTATTR_HDRLEN) return false;
        int len = MemoryMarshal.Read<ushort>(_rest);
        if (len < rtnetlink.RTATTR_HDRLEN || len > _rest.Length) return false;
        type = MemoryMarshal.Read<ushort>(_rest[2..]);
        value = _rest[rtnetlink.RTATTR_HDRLEN..len];
        _rest = _rest[Math.Min(rtnetlink.RTA_ALIGN(len), _rest.Length)..];
        return true;
    }
}

/// <summary>ifaddrmsg: family, prefix length, flags, scope, interface index.</summary>
internal readonly record struct IfAddrMessage(byte Family, byte PrefixLength, byte Flags, byte Scope, uint Index)
{
    public static bool TryParse(ReadOnlySpan<byte> payload, out IfAddrMessage message) => MemoryMarshal.TryRead(payload, out message);

    public void Emit(Span<byte> payload) => MemoryMarshal.Write(payload, in this);
}

/// <summary>struct ifa_cacheinfo, the IFA_CACHEINFO attribute: an address's preferred and valid
/// lifetimes in seconds. The two timestamps are the kernel's to fill in (it ignores them on a
/// request), so they are written as 0.</summary>
internal readonly record struct IfAddrCacheInfo(uint Preferred, uint Valid, uint Created = 0, uint Updated = 0)
{
    public void Emit(Span<byte> value) => MemoryMarshal.Write(value, in this);

    public static bool TryParse(ReadOnlySpan<byte> value, out IfAddrCacheInfo info) => MemoryMarshal.TryRead(value, out info);
}

/// <summary>rtmsg: the fixed part of a route message.</summary>
internal readonly record struct RouteMessage(byte Family, byte DestinationLength, byte SourceLength, byte Tos, byte Table, byte Protocol, byte Scope, byte Type, uint Flags)
{
    public static bool TryParse(ReadOnlySpan<byte> payload, out RouteMessage message) => MemoryMarshal.TryRead(payload, out message);

    public void Emit(Span<byte> payload) => MemoryMarshal.Write(payload, in this);
}
