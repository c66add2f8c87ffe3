using Tmds.Linux;

namespace SockShim.Binding;

/// <summary>The socket options the binder sets on a descriptor, with Tmds.LibC's constants.
/// Set with setsockopt on the descriptor, not Socket.SetRawSocketOption: .NET counts a raw
/// option as configuration it cannot replay, and then refuses to retry a multi-address connect
/// on a fresh descriptor after a refusal ("invalid for use after a failed connection").</summary>
internal static unsafe class SocketOptions
{
    /// <summary>IP_BIND_ADDRESS_NO_PORT: bind the address now, pick the port at connect.</summary>
    public static bool DeferPort(int fd) => Set(fd, LibC.SOL_IP, LibC.IP_BIND_ADDRESS_NO_PORT, 1);

    /// <summary>Lets the socket bind an address of a prefix routed to the host (AnyIP).</summary>
    public static bool FreeBind(int fd, bool ipv6Socket) =>
        ipv6Socket
            ? Set(fd, LibC.SOL_IPV6, LibC.IPV6_FREEBIND, 1) && Set(fd, LibC.SOL_IP, LibC.IP_FREEBIND, 1)
            : Set(fd, LibC.SOL_IP, LibC.IP_FREEBIND, 1);

    /// <summary>Marks the socket's packets with the pool's DiffServ class: IP_TOS for IPv4 (on a
    /// dual-mode socket too, for its IPv4-mapped traffic), IPV6_TCLASS for IPv6.</summary>
    public static bool Mark(int fd, bool ipv6Socket, int dscp)
    {
        int value = Stack.Policy.Dscp.ToTrafficClass(dscp);
        bool v4 = Set(fd, LibC.SOL_IP, LibC.IP_TOS, value);
        return ipv6Socket ? Set(fd, LibC.SOL_IPV6, LibC.IPV6_TCLASS, value) : v4;
    }

    private static bool Set(int fd, int level, int name, int value) => LibC.setsockopt(fd, level, name, &value, sizeof(int)) == 0;
}
