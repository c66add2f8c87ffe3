using System.Net.Sockets;
using SockShim.Stack.Addressing;
using SockShim.Stack.Pools;
using SockShim.Stack.Provisioning;

namespace SockShim.Stack.Configuration;

/// <summary>Turns <see cref="PoolSettings"/> into a <see cref="PoolDefinition"/> and its
/// provisioner, collecting every problem. <c>where(field, index)</c> names the source of a value
/// (a file key, a variable, an option) for the messages.</summary>
internal static class PoolBuilder
{
    public static (PoolDefinition, IAddressProvisioner)? Build(PoolSettings pool, Func<string, int?, string> where, List<SettingProblem> problems)
    {
        // A helper's pool is described by the helper: only its socket is this process's setting.
        if (pool.IsHelper)
        {
            if (pool.Helper is not { Length: > 0 } path || !System.IO.Path.IsPathFullyQualified(path))
                problems.Add(new(where("Helper", null), pool.Helper ?? "", "a helper pool needs the absolute path of the helper's Unix socket", "/run/sockshim/helper.sock"));
            return null;
        }
        int before = problems.Count;
        AddressFamily? declared = null;
        if (pool.Family is { } f)
        {
            declared = f.Trim().ToLowerInvariant() switch
            {
                "ipv4" or "inet" or "4" => AddressFamily.InterNetwork,
                "ipv6" or "inet6" or "6" => AddressFamily.InterNetworkV6,
                _ => null,
            };
            if (declared is null) problems.Add(new(where("Family", null), f, "the family must be ipv4 or ipv6", "ipv4"));
        }

        if (pool.Ranges.Count == 0)
            problems.Add(new(where("Ranges", null), "", $"pool '{pool.Name}' has no addresses", AddressRange.Examples));

        var ranges = Parse(pool.Ranges, "Ranges", where, problems);
        var exclusions = Parse(pool.Exclude, "Exclude", where, problems);

        AddressFamily? family = declared ?? ranges.FirstOrDefault().Item1.Family;
        void CheckFamily(List<(AddressRange, int)> list, string field, string what)
        {
            foreach (var (range, i) in list)
            {
                if (family is null || range.Family == family) continue;
                problems.Add(new(where(field, i), range.ToString(),
                    $"pool '{pool.Name}' is {AddressMath.FamilyName(family.Value)}, and this is an {AddressMath.FamilyName(range.Family)} {what}",
                    family == AddressFamily.InterNetwork ? "127.100.0.0/16" : "2001:db8:1::/112"));
            }
        }
        CheckFamily(ranges, "Ranges", "range");
        CheckFamily(exclusions, "Exclude", "exclusion");

        if (pool.MaxAddresses < 1 || pool.MaxAddresses > PoolSettings.MaxTableAddresses)
            problems.Add(new(where("MaxAddresses", null), pool.MaxAddresses.ToString(), $"the table size must be from 1 to {PoolSettings.MaxTableAddresses}", "65536"));

        CheckDhcp(pool, family, where, problems);
        if (pool.Dscp is { } dscp && !Policy.Dscp.TryParse(dscp, out _))
            problems.Add(new(where("Dscp", null), dscp, "not a DiffServ class", Policy.Dscp.Example));

        var provisioner = Provisioners.Create(pool, out var cannot);
        if (provisioner is null)
            problems.Add(new(where(cannot.Contains("interface") ? "Interface" : "Provisioner", null), cannot.Contains("interface") ? pool.Interface ?? "" : pool.Provisioner, cannot,
                cannot.Contains("interface") ? "eth0 (with SOCKSHIM_INTERFACE or --interface)" : "loopback"));

        if (problems.Count > before) return null;

        var definition = new PoolDefinition(pool.Name, ranges.Select(r => r.Item1).ToList(), exclusions.Select(e => e.Item1).ToList(), pool.Strategy, pool.MaxAddresses);
        if (definition.Count == 0)
        {
            problems.Add(new(where("Exclude", null), string.Join(",", pool.Exclude), $"pool '{pool.Name}' is empty: its exclusions cover every address of {string.Join(", ", pool.Ranges)}", "exclude only a few addresses, such as 127.100.0.0"));
            return null;
        }
        if (provisioner!.CheckPool(definition) is { } why)
        {
            bool aboutInterface = why.StartsWith("interface '");
            problems.Add(new(where(aboutInterface ? "Interface" : "Ranges", null), aboutInterface ? pool.Interface ?? "" : string.Join(",", pool.Ranges), why,
                aboutInterface ? "eth0" : provisioner is LoopbackProvisioner ? "127.100.0.0/16" : "198.51.100.0/24"));
            return null;
        }
        return (definition, provisioner);
    }

    private static void CheckDhcp(PoolSettings pool, AddressFamily? family, Func<string, int?, string> where, List<SettingProblem> problems)
    {
        string source = pool.Source.Trim().ToLowerInvariant();
        if (source is not ("static" or "dhcp"))
        {
            problems.Add(new(where("Source", null), pool.Source, "the source must be static (the pool's ranges), dhcp (a lease per socket from a DHCP server) or helper (addresses from `sockshim serve`)", "dhcp"));
            return;
        }
        if (pool.Prefetch is < 0 or > 10_000)
            problems.Add(new(where("Prefetch", null), pool.Prefetch.ToString(), "prefetch must be from 0 to 10000 addresses", "8"));
        if (source == "static")
        {
            if (pool.DhcpProbe != 0) problems.Add(new(where("DhcpProbe", null), pool.DhcpProbe.ToString(), "the ARP probe checks addresses leased by a DHCP server", "0, or source dhcp"));
            return;
        }
        if (family == AddressFamily.InterNetworkV6)
            problems.Add(new(where("Source", null), pool.Source, $"pool '{pool.Name}' is IPv6; SockShim's DHCP client is DHCPv4", "an IPv4 pool, such as 198.51.100.0/24"));
        if (pool.Provisioner.Trim().ToLowerInvariant() is not ("netlink" or "anyip"))
            problems.Add(new(where("Provisioner", null), pool.Provisioner, "a DHCP lease goes on the interface: use the netlink (or anyip) provisioner", "netlink"));
        if (string.IsNullOrWhiteSpace(pool.Interface))
            problems.Add(new(where("Interface", null), "", $"DHCP pool '{pool.Name}' needs the interface whose DHCP server it asks", "eth0"));
        if (pool.LeaseSeconds is < 1)
            problems.Add(new(where("LeaseSeconds", null), pool.LeaseSeconds.ToString()!, "a lease time is at least 1 second", "3600"));
        if (pool.DhcpTimeout is <= 0 or > 3600 || double.IsNaN(pool.DhcpTimeout))
            problems.Add(new(where("DhcpTimeout", null), pool.DhcpTimeout.ToString(System.Globalization.CultureInfo.InvariantCulture), "the DHCP timeout is from 0 to 3600 seconds", "15"));
        if (pool.DhcpProbe is < 0 or > 10_000)
            problems.Add(new(where("DhcpProbe", null), pool.DhcpProbe.ToString(), "the ARP probe wait is from 0 (no probe) to 10000 milliseconds", "200"));
    }

    private static List<(AddressRange, int)> Parse(List<string> texts, string field, Func<string, int?, string> where, List<SettingProblem> problems)
    {
        var result = new List<(AddressRange, int)>();
        for (int i = 0; i < texts.Count; i++)
        {
            if (AddressRange.TryParse(texts[i], out var range, out var error)) result.Add((range, i));
            else problems.Add(new(where(field, i), texts[i], $"not a CIDR, range or address: {error}", AddressRange.Examples));
        }
        return result;
    }
}
