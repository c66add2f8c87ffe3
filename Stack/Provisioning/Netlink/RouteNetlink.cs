using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using SockShim.Stack.Interop;
using SockShim.Stack.Wire;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace SockShim.Stack.Provisioning.Netlink;

/// <summary>
/// A NETLINK_ROUTE socket: one request at a time, each acknowledged by the kernel. About 20 us
/// per address added and removed, against 6-8 ms for an `ip addr` process.
/// </summary>
internal unsafe class RouteNetlink : IDisposable
{
    private int _fd; // -1 once disposed, under _gate
    private readonly object _gate = new();
    private readonly byte[] _receive = new byte[64 * 1024];
    private uint _sequence;

    private RouteNetlink(int fd) => _fd = fd;

    /// <summary>Opens the socket; null and an errno when that fails. With <paramref
    /// name="groups"/> (RTMGRP_* bits) it also hears the kernel's notifications of those groups
    /// (see <see cref="TakeNotifications"/>); such a socket is for watching, not for requests.</summary>
    public static RouteNetlink? Open(out int error, uint groups = 0)
    {
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, netlink.NETLINK_ROUTE);
        if (fd < 0) { error = errno; return null; }
        Span<byte> local = stackalloc byte[netlink.SOCKADDR_NL_SIZE];
        local.Clear();
        MemoryMarshal.Write(local, (ushort)(int)AF_NETLINK);
        MemoryMarshal.Write(local[netlink.SOCKADDR_NL_GROUPS..], groups);
        fixed (byte* p = local)
        {
            if (bind(fd, (sockaddr*)p, (uint)local.Length) != 0)
            {
                error = errno;
                close(fd);
                return null;
            }
        }
        error = 0;
        return new RouteNetlink(fd);
    }

    /// <summary>Adds (or removes) one address on interface <paramref name="index"/> as a /32 or
    /// /128, marked with <paramref name="protocol"/>; 0 or the kernel's errno. The add is
    /// exclusive (EEXIST when the address is there already); an address added with a finite
    /// <paramref name="lifetimeSeconds"/> is removed by the kernel itself when it runs out.</summary>
    public int ChangeAddress(bool add, uint index, IPAddress address, byte protocol, uint lifetimeSeconds = if_addr.INFINITY_LIFE_TIME, bool dad = false)
    {
        Span<byte> buffer = stackalloc byte[AddressMessageSize];
        return Request(add
            ? AddressMessage(buffer, rtnetlink.RTM_NEWADDR, netlink.NLM_F_CREATE | netlink.NLM_F_EXCL, NextSequence(), index, address, protocol, lifetimeSeconds, dad)
            : AddressMessage(buffer, rtnetlink.RTM_DELADDR, 0, NextSequence(), index, address, protocol, null), null);
    }

    /// <summary>Sets the lifetime of an address this socket's owner put on the interface again
    /// (NLM_F_REPLACE: same prefix, flags and mark); 0 or the kernel's errno. The kernel adds the
    /// address when it is not there (IPv4 and IPv6 both ignore a missing NLM_F_CREATE), so only
    /// an address still held may be refreshed.</summary>
    public int RefreshAddress(uint index, IPAddress address, byte protocol, uint lifetimeSeconds)
    {
        Span<byte> buffer = stackalloc byte[AddressMessageSize];
        return Request(AddressMessage(buffer, rtnetlink.RTM_NEWADDR, netlink.NLM_F_REPLACE, NextSequence(), index, address, protocol, lifetimeSeconds), null);
    }

    internal const int AddressMessageSize = 128;

    /// <summary>The RTM_NEWADDR or RTM_DELADDR request for one host address; <paramref name="lifetimeSeconds"/>
    /// (valid and preferred alike) only for RTM_NEWADDR. Built apart from sending so the bytes can be checked.</summary>
    internal static Span<byte> AddressMessage(Span<byte> buffer, ushort type, ushort flags, uint sequence, uint index, IPAddress address, byte protocol, uint? lifetimeSeconds, bool dad = false)
    {
        bool v6 = address.AddressFamily == AddressFamily.InterNetworkV6;
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out int length);
        var w = new NetlinkRequestWriter(buffer, type, (ushort)(netlink.NLM_F_REQUEST | netlink.NLM_F_ACK | flags), sequence);
        // Each address is a host route of its own: when addresses share a prefix the first is
        // "primary", and deleting it would silently delete all the others.
        new IfAddrMessage((byte)(v6 ? 10 : 2), (byte)(v6 ? 128 : 32), 0, rtnetlink.RT_SCOPE_UNIVERSE, index).Emit(w.Payload(if_addr.IFADDRMSG_SIZE));
        w.Attribute(if_addr.IFA_LOCAL, bytes[..length]);
        w.Attribute(if_addr.IFA_ADDRESS, bytes[..length]);
        if (lifetimeSeconds is { } lifetime)
        {
            // No duplicate address detection unless asked for (a pool shared by hosts): the
            // address is usable at once, and the pool already guarantees it is unique on this
            // host. With it the kernel's DAD (RFC 4862 §5.4) decides, and the address stays
            // tentative, unusable, until it has (see AddressFlags). No prefix route for IPv6: the
            // kernel would put a /128 route in the main table beside the address's local one,
            // which already routes it, and on deleting a permanent address walk every address
            // of the interface to see whether another still needs that route. Permanent only
            // when it never runs out: the kernel derives IFA_F_PERMANENT from the lifetime anyway.
            uint permanent = lifetime == if_addr.INFINITY_LIFE_TIME ? if_addr.IFA_F_PERMANENT : 0;
            w.Attribute(if_addr.IFA_FLAGS, (v6 ? (dad ? 0 : if_addr.IFA_F_NODAD) | if_addr.IFA_F_NOPREFIXROUTE : 0) | permanent);
            w.Attribute(if_addr.IFA_PROTO, stackalloc byte[] { protocol });
            // Preferred = valid: the address is fully usable until it goes, never "deprecated".
            Span<byte> cacheInfo = stackalloc byte[if_addr.IFA_CACHEINFO_SIZE];
            new IfAddrCacheInfo(lifetime, lifetime).Emit(cacheInfo);
            w.Attribute(if_addr.IFA_CACHEINFO, cacheInfo);
        }
        return w.Finish();
    }

    /// <summary>Every address on the host: interface index, address, prefix length, protocol mark.</summary>
    public int ListAddresses(List<(uint Index, IPAddress Address, byte PrefixLength, byte Protocol)> into)
    {
        Span<byte> buffer = stackalloc byte[64];
        var w = new NetlinkRequestWriter(buffer, rtnetlink.RTM_GETADDR, netlink.NLM_F_REQUEST | netlink.NLM_F_DUMP, NextSequence());
        new IfAddrMessage(0, 0, 0, 0, 0).Emit(w.Payload(if_addr.IFADDRMSG_SIZE));
        return Request(w.Finish(), (header, payload) =>
        {
            if (header.Type != rtnetlink.RTM_NEWADDR || !IfAddrMessage.TryParse(payload, out var msg)) return;
            IPAddress? address = null;
            byte protocol = 0;
            var attrs = new RouteAttributeReader(payload[if_addr.IFADDRMSG_SIZE..]);
            while (attrs.Next(out var type, out var value))
            {
                if ((type == if_addr.IFA_LOCAL || (type == if_addr.IFA_ADDRESS && address is null)) && value.Length is 4 or 16) address = new IPAddress(value);
                else if (type == if_addr.IFA_PROTO && value.Length >= 1) protocol = value[0];
            }
            if (address is not null) into.Add((msg.Index, address, msg.PrefixLength, protocol));
        });
    }

    /// <summary>The flags (IFA_FLAGS: tentative, DAD failed, ...) of <paramref name="address"/> on
    /// interface <paramref name="index"/>; null when it is not there. An address dump of one
    /// family: it answers while the kernel's duplicate address detection runs.</summary>
    public uint? AddressFlags(uint index, IPAddress address)
    {
        Span<byte> buffer = stackalloc byte[64];
        var w = new NetlinkRequestWriter(buffer, rtnetlink.RTM_GETADDR, netlink.NLM_F_REQUEST | netlink.NLM_F_DUMP, NextSequence());
        new IfAddrMessage((byte)(address.AddressFamily == AddressFamily.InterNetworkV6 ? 10 : 2), 0, 0, 0, 0).Emit(w.Payload(if_addr.IFADDRMSG_SIZE));
        uint? found = null;
        Request(w.Finish(), (header, payload) =>
        {
            if (header.Type != rtnetlink.RTM_NEWADDR || !IfAddrMessage.TryParse(payload, out var msg) || msg.Index != index) return;
            IPAddress? local = null;
            uint flags = msg.Flags; // the low byte; IFA_FLAGS, when present, has them all
            var attrs = new RouteAttributeReader(payload[if_addr.IFADDRMSG_SIZE..]);
            while (attrs.Next(out var type, out var value))
            {
                if ((type == if_addr.IFA_LOCAL || (type == if_addr.IFA_ADDRESS && local is null)) && value.Length is 4 or 16) local = new IPAddress(value);
                else if (type == if_addr.IFA_FLAGS && value.Length >= 4) flags = MemoryMarshal.Read<uint>(value); // host order, as netlink is
            }
            if (address.Equals(local)) found = flags;
        });
        return found;
    }

    /// <summary>The route type the kernel picks for <paramref name="destination"/> (RTN_LOCAL for
    /// an address of this host); 0 and an errno when there is none.</summary>
    public int RouteTypeOf(IPAddress destination, out byte routeType)
    {
        bool v6 = destination.AddressFamily == AddressFamily.InterNetworkV6;
        Span<byte> bytes = stackalloc byte[16];
        destination.TryWriteBytes(bytes, out int length);
        Span<byte> buffer = stackalloc byte[64];
        var w = new NetlinkRequestWriter(buffer, rtnetlink.RTM_GETROUTE, netlink.NLM_F_REQUEST, NextSequence());
        new RouteMessage((byte)(v6 ? 10 : 2), (byte)(v6 ? 128 : 32), 0, 0, 0, 0, 0, 0, 0).Emit(w.Payload(rtnetlink.RTMSG_SIZE));
        w.Attribute(rtnetlink.RTA_DST, bytes[..length]);
        byte found = 0;
        int result = Request(w.Finish(), (header, payload) =>
        {
            if (header.Type == rtnetlink.RTM_NEWROUTE && RouteMessage.TryParse(payload, out var route)) found = route.Type;
        });
        routeType = found;
        return result;
    }

    /// <summary>Adds <c>local PREFIX dev lo</c> to the local table: the kernel then takes the whole
    /// prefix as this host's (AnyIP). The configuration allows only prefixes here (a CIDR).</summary>
    public int AddLocalRoute(Addressing.AddressRange prefix, uint loopbackIndex)
    {
        int prefixLength = Addressing.AddressMath.Bits(prefix.Family) - (int)UInt128.Log2(prefix.Count);
        bool v6 = prefix.Family == AddressFamily.InterNetworkV6;
        Span<byte> bytes = stackalloc byte[16];
        prefix.FirstAddress.TryWriteBytes(bytes, out int length);
        Span<byte> buffer = stackalloc byte[96];
        var w = new NetlinkRequestWriter(buffer, rtnetlink.RTM_NEWROUTE,
            (ushort)(netlink.NLM_F_REQUEST | netlink.NLM_F_ACK | netlink.NLM_F_CREATE | netlink.NLM_F_EXCL), NextSequence());
        new RouteMessage((byte)(v6 ? 10 : 2), (byte)prefixLength, 0, 0, rtnetlink.RT_TABLE_LOCAL, rtnetlink.RTPROT_STATIC,
            rtnetlink.RT_SCOPE_HOST, rtnetlink.RTN_LOCAL, 0).Emit(w.Payload(rtnetlink.RTMSG_SIZE));
        w.Attribute(rtnetlink.RTA_DST, bytes[..length]);
        w.Attribute(rtnetlink.RTA_OIF, loopbackIndex);
        return Request(w.Finish(), null);
    }

    public delegate bool MessageFilter(NetlinkHeader header, ReadOnlySpan<byte> payload);

    /// <summary>Reads, without waiting, every notification queued on a watching socket: true when
    /// one of them <paramref name="matters"/>, or when the kernel dropped some (ENOBUFS, a full
    /// queue) or the socket failed, so the caller reads again what it watches.</summary>
    public bool TakeNotifications(MessageFilter matters)
    {
        bool any = false;
        lock (_gate)
        {
            if (_fd < 0) return true;
            // Bounded: a host changing routes faster than this drains is read again anyway.
            for (int taken = 0; taken < 100_000; taken++)
            {
                long got;
                fixed (byte* p = _receive) got = recv(_fd, p, (uint)_receive.Length, MSG_DONTWAIT);
                if (got > 0)
                {
                    var rest = _receive.AsSpan(0, (int)got);
                    while (!any && NetlinkHeader.TryParse(rest, out var header) && header.Length >= netlink.NLMSG_HDRLEN && header.Length <= rest.Length)
                    {
                        any = matters(header, rest[netlink.NLMSG_HDRLEN..(int)header.Length]);
                        rest = rest[Math.Min(netlink.NLMSG_ALIGN((int)header.Length), rest.Length)..];
                    }
                    // What is left unread could not be parsed: a change is assumed.
                    any |= rest.Length >= netlink.NLMSG_ALIGNTO;
                    continue;
                }
                int error = got == 0 ? 0 : errno;
                if (error == EINTR) continue;
                // The kernel dropped notifications (reported once), and drops every later one
                // until the queue is read empty: drained to the end, so it hears changes again.
                if (got == 0 || error == ENOBUFS)
                {
                    any = true;
                    continue;
                }
                return any || error != EAGAIN;
            }
            return true;
        }
    }

    /// <summary>Joins multicast group <paramref name="group"/> (RTNLGRP_* number) on a watching
    /// socket; false when the kernel has no such group.</summary>
    public bool Join(uint group)
    {
        lock (_gate) return _fd >= 0 && setsockopt(_fd, SOL_NETLINK, netlink.NETLINK_ADD_MEMBERSHIP, &group, sizeof(uint)) == 0;
    }

    private uint NextSequence() => Interlocked.Increment(ref _sequence);

    public delegate void MessageHandler(NetlinkHeader header, ReadOnlySpan<byte> payload);

    /// <summary>Sends one request and reads until its ACK, error or end of dump.</summary>
    private int Request(ReadOnlySpan<byte> message, MessageHandler? onMessage)
    {
        uint sequence = MemoryMarshal.Read<NetlinkHeader>(message).Sequence;
        lock (_gate)
        {
            fixed (byte* p = message)
            {
                if ((long)send(_fd, p, (uint)message.Length, 0) < 0) return errno;
            }
            while (true)
            {
                long got;
                fixed (byte* p = _receive) got = recv(_fd, p, (uint)_receive.Length, 0);
                if (got < 0)
                {
                    if (errno == EINTR) continue;
                    return errno;
                }
                var rest = _receive.AsSpan(0, (int)got);
                while (NetlinkHeader.TryParse(rest, out var header))
                {
                    var payload = rest[netlink.NLMSG_HDRLEN..(int)header.Length];
                    rest = rest[Math.Min(netlink.NLMSG_ALIGN((int)header.Length), rest.Length)..];
                    // Replies to other requests (none, with one request at a time) are not ours.
                    if (header.Sequence != sequence) continue;
                    if (header.Type == netlink.NLMSG_ERROR)
                        return payload.Length >= 4 ? -MemoryMarshal.Read<int>(payload) : EPROTO;
                    if (header.Type == netlink.NLMSG_DONE) return 0;
                    onMessage?.Invoke(header, payload);
                    if ((header.Flags & netlink.NLM_F_MULTI) == 0 && onMessage is not null) return 0;
                }
            }
        }
    }

    // Under the lock and marked: a thread still asking after the owner gave up on it must not
    // reach a descriptor number the process has since reused.
    public void Dispose()
    {
        lock (_gate)
        {
            if (_fd >= 0) close(_fd);
            _fd = -1;
        }
    }
}
