using SockShim.Stack.Configuration;
using SockShim.Stack.Provisioning.Netlink;
using P = SockShim.Stack.Configuration.PoolField;

namespace SockShim.Stack.Provisioning;

/// <summary>
/// Whether this host can serve a configuration: interfaces exist, prefixes are routed here,
/// the process holds the capabilities its provisioners need. It only reads (sysfs, /proc, a
/// netlink route query) and changes nothing; the stack's creation runs it, and
/// `sockshim config --check-host` runs it on purpose. Each problem names the setting it is about.
/// </summary>
internal static class HostChecks
{
    public static List<SettingProblem> Run(StackSpec spec)
    {
        var problems = new List<SettingProblem>();
        foreach (var pool in spec.Pools.OfType<LocalPoolSpec>()) Check(pool, problems);
        return problems;
    }

    private static void Check(LocalPoolSpec pool, List<SettingProblem> problems)
    {
        var where = pool.Origins;
        switch (pool.Provisioner)
        {
            case NetlinkProvisionerSpec netlink:
                if (!InterfaceExists(netlink.Interface, where, problems)) return;
                if (!HostFacts.HasNetAdmin())
                    problems.Add(new(where.Of(P.Provisioner), "netlink", $"the netlink provisioner adds pool '{pool.Name}' addresses to {netlink.Interface}, and {HostFacts.NetAdminHelp}", "loopback, or run it with CAP_NET_ADMIN"));
                break;
            case AnyIpProvisionerSpec anyIp:
                CheckRoutes(pool, anyIp, problems);
                break;
        }
        if (pool is DhcpPoolSpec dhcp && InterfaceExists(dhcp.Interface, where, problems))
        {
            var mac = HostFacts.HardwareAddress(dhcp.Interface);
            if (mac is null || mac.All(b => b == 0))
                problems.Add(new(where.Of(P.Interface), dhcp.Interface, "has no Ethernet address to put in DHCP requests", "an Ethernet interface on the DHCP server's link, such as eth0"));
        }
    }

    private static bool InterfaceExists(string name, SettingOrigins where, List<SettingProblem> problems)
    {
        if (HostFacts.InterfaceIndex(name) is not null) return true;
        problems.Add(new(where.Of(P.Interface), name,
            $"interface '{name}' does not exist in this network namespace (interfaces: {string.Join(", ", HostFacts.InterfaceNames())})", "eth0 (with SOCKSHIM_INTERFACE or --interface)"));
        return false;
    }

    private static void CheckRoutes(LocalPoolSpec pool, AnyIpProvisionerSpec anyIp, List<SettingProblem> problems)
    {
        var where = pool.Origins;
        using var netlink = RouteNetlink.Open(out int openError);
        if (netlink is null)
        {
            problems.Add(new(where.Of(P.Provisioner), "anyip", $"a NETLINK_ROUTE socket could not be opened (errno {openError}) to check pool '{pool.Name}' routes", "loopback"));
            return;
        }
        foreach (var range in AnyIpProvisioner.Unrouted(netlink, pool.Addresses))
        {
            string command = AnyIpProvisioner.RouteCommand(range);
            if (!anyIp.AddRoute)
                problems.Add(new(where.Of(P.Ranges), range.ToString(),
                    $"pool '{pool.Name}' range {range} is not routed to this host as local, so its addresses cannot be bound; add the route with `{command}`, or set anyipAddRoute (SOCKSHIM_ANYIPADDROUTE=true) to let SockShim add it",
                    "a prefix routed to this host"));
            else if (!HostFacts.HasNetAdmin())
                problems.Add(new(where.Of(P.AnyIpAddRoute), "true", $"adding the local route for {range}: {HostFacts.NetAdminHelp}; or add it by hand with `{command}`", "false, with the route added by hand"));
        }
    }
}
