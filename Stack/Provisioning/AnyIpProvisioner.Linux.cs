using System.Net;
using System.Net.Sockets;
using SockShim.Stack.Addressing;
using SockShim.Stack.Interop;
using SockShim.Stack.Pools;
using SockShim.Stack.Provisioning.Netlink;

namespace SockShim.Stack.Provisioning;

/// <summary>
/// AnyIP: a prefix routed to this host as local (<c>ip route add local PREFIX dev lo</c>) makes
/// every address in it usable at once, with nothing per address on the NIC. Sockets bind with
/// IP_FREEBIND / IPV6_FREEBIND (IPv6 needs it; the kernel answers neighbours for the prefix).
/// Suits a prefix routed to this host, not a shared LAN's own subnet.
/// </summary>
public sealed class AnyIpProvisioner(bool addRoute) : IAddressProvisioner
{
    public string Name => "anyip";

    public bool FreeBind => true;

    public string? CheckPool(PoolDefinition pool)
    {
        using var netlink = RouteNetlink.Open(out int openError);
        if (netlink is null) return $"a NETLINK_ROUTE socket could not be opened (errno {openError})";
        foreach (var range in pool.Ranges)
        {
            if (IsLocal(netlink, range)) continue;
            string prefix = range.ToString();
            string command = $"ip{(range.Family == AddressFamily.InterNetworkV6 ? " -6" : "")} route add local {prefix} dev lo";
            if (!addRoute)
                return $"pool '{pool.Name}' range {prefix} is not routed to this host as local, so its addresses cannot be bound; add the route with `{command}`, or set anyipAddRoute (SOCKSHIM_ANYIPADDROUTE=true) to let SockShim add it";
            if (!prefix.Contains('/'))
                return $"pool '{pool.Name}' range {prefix} is not a prefix, so no single local route covers it; write it as a CIDR or add routes by hand with `{command}`";
            if (!HostFacts.HasNetAdmin())
                return $"adding the local route for {prefix}: {HostFacts.NetAdminHelp}; or add it by hand with `{command}`";
            int bits = int.Parse(prefix[(prefix.IndexOf('/') + 1)..]);
            int error = netlink.AddLocalRoute(range, bits, HostFacts.InterfaceIndex("lo") ?? 1);
            if (error != 0 && error != Tmds.Linux.LibC.EEXIST) return $"adding `{command}` failed: errno {error}";
            if (!IsLocal(netlink, range)) return $"after adding the local route for {prefix}, its addresses are still not local; check with `ip route get {range.FirstAddress}`";
        }
        return null;
    }

    private static bool IsLocal(RouteNetlink netlink, AddressRange range) =>
        netlink.RouteTypeOf(range.FirstAddress, out byte first) == 0 && first == rtnetlink.RTN_LOCAL &&
        netlink.RouteTypeOf(range.LastAddress, out byte last) == 0 && last == rtnetlink.RTN_LOCAL;

    public string? CheckDestination(IPAddress destination, PoolDefinition pool) => null;

    public StackError? Provision(IPAddress address, PoolDefinition pool) => null;

    public void Deprovision(IPAddress address, PoolDefinition pool) { }
}
