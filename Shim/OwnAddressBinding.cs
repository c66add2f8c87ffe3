using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace SockShim;

/// <summary>Binds a socket to its own address: shared by <see cref="TupleSocket"/> and the
/// Interceptor's hooks, so both bind the same way.</summary>
internal static class OwnAddressBinding
{
    // SetSocketOption only passes options it has a mapping for; these go to the kernel as they are.
    private const int SOL_IP = 0, IP_BIND_ADDRESS_NO_PORT = 24;

    /// <summary>The endpoint to bind: an IPv4 address on an IPv6 (dual-mode) socket is bound
    /// IPv4-mapped. With <paramref name="deferPort"/> and port 0, the port is left to connect()
    /// (IP_BIND_ADDRESS_NO_PORT), which picks it against the full 4-tuple, so the address keeps
    /// its whole ephemeral range and a later bind may still choose a port. Right before a
    /// connect there is nothing to defer to: the kernel picks the port at bind, which costs less
    /// than the 4-tuple search (about 8 us per connection measured here), and the address is the
    /// socket's own, so its range is not shared.</summary>
    public static IPEndPoint Prepare(Socket socket, Stack.Leases.Lease lease, int port, bool deferPort)
    {
        var address = lease.Address;
        if (Handle(socket) is { IsInvalid: false } owned) lease.RecordSocket((long)owned.DangerousGetHandle());
        if (socket.AddressFamily == AddressFamily.InterNetworkV6 && address.AddressFamily == AddressFamily.InterNetwork)
            address = address.MapToIPv6();
        if ((port == 0 && deferPort) || lease.NeedsFreeBind || lease.Dscp is not null)
        {
            var handle = Handle(socket);
            if (handle is null || handle.IsInvalid) throw new ObjectDisposedException(nameof(Socket));
            int fd = (int)handle.DangerousGetHandle();
            if (port == 0 && deferPort && !DeferPort(fd)) throw Failed("IP_BIND_ADDRESS_NO_PORT");
            if (lease.NeedsFreeBind && !FreeBind(fd, socket.AddressFamily == AddressFamily.InterNetworkV6)) throw Failed("IP_FREEBIND");
            if (lease.Dscp is { } dscp && !Mark(fd, socket.AddressFamily == AddressFamily.InterNetworkV6, dscp)) throw Failed("IP_TOS/IPV6_TCLASS");
        }
        return new IPEndPoint(address, port);
    }

    private static SocketException Failed(string option) =>
        new((int)SocketError.InvalidArgument, $"SockShim: setsockopt({option}) failed, errno {Tmds.Linux.LibC.errno}");

    private const int SOL_IPV6 = 41, IP_FREEBIND = 15, IPV6_FREEBIND = 78;

    /// <summary>Lets the socket bind an address of a prefix routed to the host (AnyIP).</summary>
    public static unsafe bool FreeBind(int fd, bool ipv6Socket)
    {
        int one = 1;
        return ipv6Socket
            ? Tmds.Linux.LibC.setsockopt(fd, SOL_IPV6, IPV6_FREEBIND, &one, sizeof(int)) == 0 && Tmds.Linux.LibC.setsockopt(fd, SOL_IP, IP_FREEBIND, &one, sizeof(int)) == 0
            : Tmds.Linux.LibC.setsockopt(fd, SOL_IP, IP_FREEBIND, &one, sizeof(int)) == 0;
    }

    private const int IP_TOS = 1, IPV6_TCLASS = 67;

    /// <summary>Marks the socket's packets with the pool's DiffServ class: IP_TOS for IPv4 (on a
    /// dual-mode socket too, for its IPv4-mapped traffic), IPV6_TCLASS for IPv6.</summary>
    public static unsafe bool Mark(int fd, bool ipv6Socket, int dscp)
    {
        int value = Stack.Policy.Dscp.ToTrafficClass(dscp);
        bool v4 = Tmds.Linux.LibC.setsockopt(fd, SOL_IP, IP_TOS, &value, sizeof(int)) == 0;
        return ipv6Socket ? Tmds.Linux.LibC.setsockopt(fd, SOL_IPV6, IPV6_TCLASS, &value, sizeof(int)) == 0 : v4;
    }

    // Set with setsockopt on the descriptor, not Socket.SetRawSocketOption: .NET counts a raw
    // option as configuration it cannot replay, and then refuses to retry a multi-address
    // connect on a fresh descriptor after a refusal ("invalid for use after a failed connection").
    /// <summary>Sets IP_BIND_ADDRESS_NO_PORT on a descriptor; false (errno set) on failure.</summary>
    public static unsafe bool DeferPort(int fd)
    {
        int one = 1;
        return Tmds.Linux.LibC.setsockopt(fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(int)) == 0;
    }

    /// <summary>The socket's handle, read from the field: Socket.Handle and Socket.SafeHandle
    /// mark the handle exposed, which also switches off multi-address connect retries.</summary>
    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_handle")]
    public static extern ref SafeSocketHandle? Handle(Socket socket);

    public static bool IsWildcard(IPAddress a) =>
        a.Equals(IPAddress.Any) || a.Equals(IPAddress.IPv6Any) || (a.IsIPv4MappedToIPv6 && a.MapToIPv4().Equals(IPAddress.Any));
}
