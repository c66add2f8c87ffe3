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

    /// <summary>Adds one address as <see cref="ChangeAddress"/> does and, in the same system call,
    /// asks the route type the kernel then has for it (<see cref="RouteTypeOf"/>); the add's 0 or
    /// errno, and <paramref name="routeType"/> 0 when the question got no answer. An IPv6 address
    /// gets its local route from the kernel's address work, queued by the add on this CPU: the
    /// kernel lets that work run between the two requests (sendmmsg yields the CPU between
    /// messages when a woken task should have it), so the answer is usually already RTN_LOCAL,
    /// and the add and the first look at the route cost one round trip instead of two.</summary>
    public int AddAddressAndAskRoute(uint index, IPAddress address, byte protocol, uint lifetimeSeconds, bool dad, out byte routeType)
    {
        Span<byte> add = stackalloc byte[AddressMessageSize];
        Span<byte> ask = stackalloc byte[RouteQuerySize];
        byte found = 0;
        int result = RequestPair(
            AddressMessage(add, rtnetlink.RTM_NEWADDR, netlink.NLM_F_CREATE | netlink.NLM_F_EXCL, NextSequence(), index, address, protocol, lifetimeSeconds, dad),
            RouteQuery(ask, NextSequence(), address),
            (header, payload) =>
            {
                if (header.Type == rtnetlink.RTM_NEWROUTE && RouteMessage.TryParse(payload, out var route)) found = route.Type;
            });
        routeType = found;
        return result;
    }

    /// <summary>Removes one address as <see cref="ChangeAddress"/> does, without asking for the
    /// kernel's acknowledgement: the kernel handles a request in the sending call itself (under
    /// its routing lock), so the address is off the interface when this returns 0, and reading
    /// an ACK would only cost a second system call. A refusal (the address or the interface
    /// already gone) still comes back as an error message, which the next request on this
    /// socket passes over (its sequence number is not the one awaited). 0 or the send's errno.</summary>
    public int RemoveAddressUnacknowledged(uint index, IPAddress address, byte protocol)
    {
        Span<byte> buffer = stackalloc byte[AddressMessageSize];
        var message = AddressMessage(buffer, rtnetlink.RTM_DELADDR, 0, NextSequence(), index, address, protocol, null, acknowledged: false);
        lock (_gate)
        {
            if (_fd < 0) return EBADF;
            fixed (byte* p = message)
                return (long)send(_fd, p, (uint)message.Length, 0) < 0 ? errno : 0;
        }
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
    internal static Span<byte> AddressMessage(Span<byte> buffer, ushort type, ushort flags, uint sequence, uint index, IPAddress address, byte protocol, uint? lifetimeSeconds, bool dad = false, bool acknowledged = true)
    {
        bool v6 = address.AddressFamily == AddressFamily.InterNetworkV6;
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out int length);
        var w = new NetlinkRequestWriter(buffer, type, (ushort)(netlink.NLM_F_REQUEST | (acknowledged ? netlink.NLM_F_ACK : 0) | flags), sequence);
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
        Span<byte> buffer = stackalloc byte[RouteQuerySize];
        byte found = 0;
        int result = Request(RouteQuery(buffer, NextSequence(), destination), (header, payload) =>
        {
            if (header.Type == rtnetlink.RTM_NEWROUTE && RouteMessage.TryParse(payload, out var route)) found = route.Type;
        });
        routeType = found;
        return result;
    }

    private const int RouteQuerySize = 64;

    // RTM_GETROUTE for one destination: the kernel answers with the route it would use, or an error.
    private static Span<byte> RouteQuery(Span<byte> buffer, uint sequence, IPAddress destination)
    {
        bool v6 = destination.AddressFamily == AddressFamily.InterNetworkV6;
        Span<byte> bytes = stackalloc byte[16];
        destination.TryWriteBytes(bytes, out int length);
        var w = new NetlinkRequestWriter(buffer, rtnetlink.RTM_GETROUTE, netlink.NLM_F_REQUEST, sequence);
        new RouteMessage((byte)(v6 ? 10 : 2), (byte)(v6 ? 128 : 32), 0, 0, 0, 0, 0, 0, 0).Emit(w.Payload(rtnetlink.RTMSG_SIZE));
        w.Attribute(rtnetlink.RTA_DST, bytes[..length]);
        return w.Finish();
    }

    /// <summary>Adds <c>local PREFIX dev lo</c> to the local table: the kernel then takes the whole
    /// prefix as this host's (AnyIP). The configuration allows only prefixes here (a CIDR).</summary>
    public int AddLocalRoute(Addressing.AddressRange prefix, uint loopbackIndex)
    {
        int prefixLength = prefix.PrefixLength ?? throw new ArgumentException($"{prefix} is not one prefix", nameof(prefix));
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

    /// <summary>Sends two requests in one system call (sendmmsg: one datagram each, handled in
    /// order) and reads both answers (recvmmsg): the first acknowledged, the second answered by
    /// <paramref name="onSecond"/>'s messages or an error, which is ignored. The first's 0 or errno.</summary>
    private int RequestPair(ReadOnlySpan<byte> first, ReadOnlySpan<byte> second, MessageHandler onSecond)
    {
        uint firstSequence = MemoryMarshal.Read<NetlinkHeader>(first).Sequence;
        uint secondSequence = MemoryMarshal.Read<NetlinkHeader>(second).Sequence;
        int? firstResult = null;
        bool secondDone = false;
        const int Half = 32 * 1024; // each answer gets half the receive buffer: a few hundred bytes at most
        lock (_gate)
        {
            if (_fd < 0) return EBADF;
            iovec* iov = stackalloc iovec[2];
            Interop.mmsghdr* vector = stackalloc Interop.mmsghdr[2];
            fixed (byte* f = first, s = second, r = _receive)
            {
                iov[0] = new iovec { iov_base = f, iov_len = first.Length };
                iov[1] = new iovec { iov_base = s, iov_len = second.Length };
                for (int i = 0; i < 2; i++) vector[i] = new Interop.mmsghdr { msg_hdr = new msghdr { msg_iov = &iov[i], msg_iovlen = 1 } };
                int sent = Interop.sys_socket.sendmmsg(_fd, vector, 2, 0);
                if (sent < 0) return Marshal.GetLastPInvokeError();
                // The second not sent: its answer is not awaited (the caller asks again).
                secondDone = sent < 2;
                while (firstResult is null || !secondDone)
                {
                    for (int i = 0; i < 2; i++)
                    {
                        iov[i] = new iovec { iov_base = r + i * Half, iov_len = Half };
                        vector[i] = new Interop.mmsghdr { msg_hdr = new msghdr { msg_iov = &iov[i], msg_iovlen = 1 } };
                    }
                    // Both answers are queued by the time sendmmsg returns: the first is waited
                    // for, the second taken if there (MSG_WAITFORONE).
                    int got = Interop.sys_socket.recvmmsg(_fd, vector, 2, Interop.sys_socket.MSG_WAITFORONE, null);
                    if (got < 0)
                    {
                        int error = Marshal.GetLastPInvokeError();
                        if (error == EINTR) continue;
                        return error;
                    }
                    for (int i = 0; i < got; i++)
                    {
                        var rest = _receive.AsSpan(i * Half, (int)Math.Min(vector[i].msg_len, (uint)Half));
                        while (NetlinkHeader.TryParse(rest, out var header))
                        {
                            var payload = rest[netlink.NLMSG_HDRLEN..(int)header.Length];
                            rest = rest[Math.Min(netlink.NLMSG_ALIGN((int)header.Length), rest.Length)..];
                            if (header.Sequence == firstSequence && header.Type == netlink.NLMSG_ERROR)
                                firstResult = payload.Length >= 4 ? -MemoryMarshal.Read<int>(payload) : EPROTO;
                            else if (header.Sequence == secondSequence && !secondDone)
                            {
                                if (header.Type is netlink.NLMSG_ERROR or netlink.NLMSG_DONE) secondDone = true;
                                else
                                {
                                    onSecond(header, payload);
                                    secondDone = (header.Flags & netlink.NLM_F_MULTI) == 0;
                                }
                            }
                            // Anything else answers an earlier request (an unacknowledged remove's refusal).
                        }
                    }
                }
            }
        }
        return firstResult ?? EPROTO;
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
