using System.Net.Sockets;
using SockShim.Stack.Addressing;
using SockShim.Stack.Configuration;
using SockShim.Stack.Interop;
using SockShim.Stack.Provisioning.Netlink;

namespace SockShim.Stack.Provisioning;

/// <summary>
/// AnyIP: a prefix routed to this host as local (<c>ip route add local PREFIX dev lo</c>) makes
/// every address in it usable at once, with nothing per address on the NIC. Sockets bind with
/// IP_FREEBIND / IPV6_FREEBIND (IPv6 needs it; the kernel answers neighbours for the prefix).
/// Suits a prefix routed to this host, not a shared LAN's own subnet.
/// </summary>
internal sealed class AnyIpProvisioner : IAddressProvisioner
{
    public ProvisionerKind Kind => ProvisionerKind.AnyIp;

    public bool FreeBind => true;

    public static string RouteCommand(AddressRange range) =>
        $"ip{(range.Family == AddressFamily.InterNetworkV6 ? " -6" : "")} route add local {range} dev lo";

    /// <summary>The pool's ranges that are not routed to this host as local (read only).</summary>
    public static List<AddressRange> Unrouted(RouteNetlink netlink, PoolDefinition pool) =>
        pool.Ranges.Where(r => !IsLocal(netlink, r)).ToList();

    /// <summary>Adds the local route of each unrouted range (the pool's anyipAddRoute): the one
    /// change to the host's routes SockShim makes, and only when the stack is created.</summary>
    public static string? AddMissingRoutes(PoolDefinition pool)
    {
        using var netlink = RouteNetlink.Open(out int openError);
        if (netlink is null) return $"a NETLINK_ROUTE socket could not be opened (errno {openError})";
        foreach (var range in Unrouted(netlink, pool))
        {
            int error = netlink.AddLocalRoute(range, HostFacts.InterfaceIndex("lo") ?? 1);
            if (error != 0 && error != Tmds.Linux.LibC.EEXIST) return $"adding `{RouteCommand(range)}` failed: errno {error}";
            if (!IsLocal(netlink, range)) return $"after adding the local route for {range}, its addresses are still not local; check with `ip route get {range.FirstAddress}`";
        }
        return null;
    }

    private static bool IsLocal(RouteNetlink netlink, AddressRange range) =>
        netlink.RouteTypeOf(range.FirstAddress, out byte first) == 0 && first == rtnetlink.RTN_LOCAL &&
        netlink.RouteTypeOf(range.LastAddress, out byte last) == 0 && last == rtnetlink.RTN_LOCAL;
}
