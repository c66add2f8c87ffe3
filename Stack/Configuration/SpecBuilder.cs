using System.Net.Sockets;
using SockShim.Stack.Addressing;
using P = SockShim.Stack.Configuration.PoolField;

namespace SockShim.Stack.Configuration;

/// <summary>
/// Turns the text of a pool's settings into its typed <see cref="PoolSpec"/>, collecting every
/// problem, each tied to its field. No I/O: whether the host can serve the pool (its interface,
/// routes, capabilities) is <c>HostChecks</c>, a separate step.
/// </summary>
internal static class SpecBuilder
{
    public static PoolSpec? Build(PoolSettings pool, SettingOrigins where, List<SettingProblem> problems)
    {
        int before = problems.Count;
        var source = Word(pool.Source, P.Source, where, problems, "the source must be static (the pool's ranges), dhcp (a lease per socket from a DHCP server) or helper (addresses from `sockshim serve`)", "dhcp",
            ("static", SourceKind.Static), ("dhcp", SourceKind.Dhcp), ("helper", SourceKind.Helper));
        if (source == SourceKind.Helper)
        {
            // A helper's pool is described by the helper: only its socket is this process's setting.
            if (pool.Helper is not { Length: > 0 } path || !Path.IsPathFullyQualified(path))
                problems.Add(new(where.Of(P.Helper), pool.Helper ?? "", "a helper pool needs the absolute path of the helper's Unix socket", "/run/sockshim/helper.sock"));
            else if (System.Text.Encoding.UTF8.GetByteCount(path) > MaxUnixSocketPath)
                problems.Add(new(where.Of(P.Helper), path, $"a Unix socket path is at most {MaxUnixSocketPath} bytes", "/run/sockshim/helper.sock"));
            return problems.Count > before ? null : new HelperPoolSpec(pool.Name, where, pool.Helper!);
        }

        AddressFamily? declared = null;
        if (pool.Family is { } f)
        {
            declared = f.Trim().ToLowerInvariant() switch
            {
                "ipv4" or "inet" or "4" => AddressFamily.InterNetwork,
                "ipv6" or "inet6" or "6" => AddressFamily.InterNetworkV6,
                _ => null,
            };
            if (declared is null) problems.Add(new(where.Of(P.Family), f, "the family must be ipv4 or ipv6", "ipv4"));
        }
        if (pool.Ranges.Count == 0) problems.Add(new(where.Of(P.Ranges), "", $"pool '{pool.Name}' has no addresses", AddressRange.Examples));
        var ranges = Parse(pool.Ranges, P.Ranges, where, problems);
        var exclusions = Parse(pool.Exclude, P.Exclude, where, problems);
        AddressFamily? family = declared ?? (ranges.Count > 0 ? ranges[0].Range.Family : null);
        CheckFamily(pool, family, ranges, P.Ranges, "range", where, problems);
        CheckFamily(pool, family, exclusions, P.Exclude, "exclusion", where, problems);
        // What the pool leaves out anyway: its exclusions and each prefix's own addresses.
        var leftOut = exclusions.Select(e => e.Range).Concat(Reserved(ranges)).ToList();
        foreach (var (range, i, _) in ranges)
        {
            if (NotUnicast.In(range, leftOut) is not { } found) continue;
            var (first, what) = found;
            problems.Add(new(where.Of(P.Ranges, i), range.ToString(),
                $"pool '{pool.Name}' range {range} holds {what}, from {first.ToAddress(range.Family)}: a socket's own address is a unicast one; exclude them or use a unicast range",
                range.Family == AddressFamily.InterNetworkV6 ? "2001:db8:1::/112"
                : TryWord(pool.Provisioner, out ProvisionerKind p, ("loopback", ProvisionerKind.Loopback)) && p == ProvisionerKind.Loopback ? "127.100.0.0/16" : "198.51.100.0/24"));
        }

        if (pool.MaxAddresses < 1 || pool.MaxAddresses > PoolSettings.MaxTableAddresses)
            problems.Add(new(where.Of(P.MaxAddresses), pool.MaxAddresses.ToString(), $"the table size must be from 1 to {PoolSettings.MaxTableAddresses}", "65536"));
        if (pool.Prefetch is < 0 or > 10_000)
            problems.Add(new(where.Of(P.Prefetch), pool.Prefetch.ToString(), "prefetch must be from 0 to 10000 addresses", "8"));
        if (pool.DhcpRate is not (>= MinDhcpRate and <= MaxDhcpRate))
            problems.Add(new(where.Of(P.DhcpRate), pool.DhcpRate.ToString(System.Globalization.CultureInfo.InvariantCulture),
                $"the DHCP rate is from {MinDhcpRate} to {MaxDhcpRate} acquisition packets a second (a switch with DHCP snooping may shut a port that sends more than 15 DHCP packets a second)", "8"));
        int? dscp = null;
        if (pool.Dscp is { } d)
        {
            if (Policy.Dscp.TryParse(d, out int cp)) dscp = cp;
            else problems.Add(new(where.Of(P.Dscp), d, "not a DiffServ class", Policy.Dscp.Example));
        }

        var provisioner = Provisioner(pool, ranges, where, problems);
        DhcpSpec? dhcp = source == SourceKind.Dhcp ? Dhcp(pool, family, provisioner, where, problems) : null;
        if (source == SourceKind.Static && pool.DhcpProbe != 0)
            problems.Add(new(where.Of(P.DhcpProbe), pool.DhcpProbe.ToString(), "the ARP probe checks addresses leased by a DHCP server", "0, or source dhcp"));
        if (pool.ConflictProbe != 0 && provisioner is not null && (source != SourceKind.Static || provisioner is not NetlinkProvisionerSpec))
            problems.Add(new(where.Of(P.ConflictProbe), pool.ConflictProbe.ToString(),
                "the conflict probe checks a static pool's addresses before the netlink provisioner adds them to a shared link (a DHCP pool's leases are probed with DhcpProbe)", "0, or provisioner netlink with source static"));
        if (problems.Count > before || source is null || provisioner is null) return null;

        var definition = new PoolDefinition(pool.Name, ranges.Select(r => r.Range).ToList(), [.. exclusions.Select(e => e.Range), .. Reserved(ranges)], pool.Strategy, pool.MaxAddresses);
        if (pool.Strategy == AllocationStrategy.OneSolicitedNodeGroup && (family != AddressFamily.InterNetworkV6 || source != SourceKind.Static || definition.Count < 2))
        {
            string why = family != AddressFamily.InterNetworkV6 ? "IPv4 has no solicited-node groups"
                : source != SourceKind.Static ? "a DHCP server picks the addresses, not the pool"
                : $"{string.Join(", ", pool.Ranges)} has {definition.Count} address{(definition.Count == 1 ? "" : "es")} sharing the low 24 bits of its first (a prefix of /104 or wider has many)";
            problems.Add(new(where.Of(P.Strategy), "one-group", $"pool '{pool.Name}': the one-group strategy keeps a static IPv6 pool's addresses in one solicited-node group; {why}", "lrr, or an IPv6 prefix such as 2001:db8:1::/64"));
            return null;
        }
        if (definition.Count == 0)
        {
            problems.Add(new(where.Of(P.Exclude), string.Join(",", pool.Exclude), $"pool '{pool.Name}' is empty: its exclusions cover every address of {string.Join(", ", pool.Ranges)}", "exclude only a few addresses, such as 127.100.0.0"));
            return null;
        }
        return source == SourceKind.Dhcp
            ? new DhcpPoolSpec(pool.Name, where, definition, provisioner, dscp, pool.Prefetch, pool.Interface!.Trim(), dhcp!)
            : new StaticPoolSpec(pool.Name, where, definition, provisioner, dscp, pool.Prefetch);
    }

    // Where a setting came from is worked out only for a problem: describing it walks every
    // configuration source, milliseconds at each app's first socket.
    public static void CheckStateDirectory(string path, Func<string> where, List<SettingProblem> problems)
    {
        if (!Path.IsPathFullyQualified(path)) problems.Add(new(where(), path, "the state directory must be an absolute path", "/dev/shm/sockshim"));
    }

    public static List<Policy.DestinationFilter.Rule> Destinations(IEnumerable<string> texts, Func<string> where, List<SettingProblem> problems)
    {
        var rules = new List<Policy.DestinationFilter.Rule>();
        foreach (var d in texts)
        {
            if (Policy.DestinationFilter.TryParseRule(d, out var rule, out var why)) rules.Add(rule);
            else problems.Add(new(where(), d, $"not a destination: {why}", Policy.DestinationFilter.Example));
        }
        return rules;
    }

    // One transaction every 10 s at the least (slower leaves a socket's 15 s wait no second try);
    // at most what a bare exchange with a server on the same host reaches (bench/dhcp.sh).
    private const double MinDhcpRate = 0.1, MaxDhcpRate = 10_000;

    // sockaddr_un.sun_path holds 108 bytes with its terminating NUL.
    private const int MaxUnixSocketPath = 107;

    /// <summary>Addresses a prefix keeps for itself: an IPv4 prefix longer than two addresses
    /// (shorter than /31) has a network and a broadcast address, an IPv6 prefix its subnet-router
    /// anycast address (RFC 4291 §2.6.1). Left out unless another item lists them explicitly.</summary>
    private static IEnumerable<AddressRange> Reserved(List<ParsedRange> ranges)
    {
        var explicitly = ranges.Where(r => r.Prefix is null).Select(r => r.Range).ToList();
        foreach (var (range, _, prefix) in ranges)
        {
            if (prefix is not { } bits) continue;
            var reserved = range.Family == AddressFamily.InterNetwork
                ? bits < 31 ? new[] { range.FirstNumber, range.LastNumber } : []
                : bits < 127 ? new[] { range.FirstNumber } : [];
            foreach (var n in reserved)
                if (!explicitly.Any(e => n >= e.FirstNumber && n <= e.LastNumber)) yield return new AddressRange(range.Family, n, n);
        }
    }

    private static ProvisionerSpec? Provisioner(PoolSettings pool, List<ParsedRange> ranges, SettingOrigins where, List<SettingProblem> problems)
    {
        var kind = Word(pool.Provisioner, P.Provisioner, where, problems, "there is no such provisioner (known: loopback, netlink, anyip)", "loopback",
            ("loopback", ProvisionerKind.Loopback), ("netlink", ProvisionerKind.Netlink), ("anyip", ProvisionerKind.AnyIp));
        switch (kind)
        {
            case ProvisionerKind.Loopback:
                foreach (var (range, _, _) in ranges.Where(r => !r.Range.IsWithin(AddressRange.Loopback)))
                {
                    problems.Add(new(where.Of(P.Ranges), string.Join(",", pool.Ranges),
                        $"the loopback provisioner serves only addresses inside 127.0.0.0/8, and {range} is outside it (IPv6 has no loopback range beyond ::1); " +
                        "use a range such as 127.100.0.0/16, or a provisioner that puts addresses on a real interface", "127.100.0.0/16"));
                    return null;
                }
                return ProvisionerSpec.Loopback;
            case ProvisionerKind.Netlink:
                if (InterfaceProblem(pool.Interface) is { } why)
                {
                    problems.Add(new(where.Of(P.Interface), pool.Interface ?? "", $"the netlink provisioner needs the interface to put pool '{pool.Name}' addresses on: {why}", "eth0 (with SOCKSHIM_INTERFACE or --interface)"));
                    return null;
                }
                if (pool.ConflictProbe is < 0 or > 10_000)
                {
                    problems.Add(new(where.Of(P.ConflictProbe), pool.ConflictProbe.ToString(), "the conflict probe waits from 0 (no probe) to 10000 milliseconds", "200"));
                    return null;
                }
                return new NetlinkProvisionerSpec(pool.Interface!.Trim(), pool.Announce, TimeSpan.FromMilliseconds(pool.ConflictProbe));
            case ProvisionerKind.AnyIp:
                if (pool.AnyIpAddRoute && ranges.Find(r => r.Prefix is null)?.Range is { } single)
                {
                    problems.Add(new(where.Of(P.Ranges), single.ToString(), $"pool '{pool.Name}' range {single} is not a prefix, so no single local route covers it; write it as a CIDR or add routes by hand", "198.51.100.0/24"));
                    return null;
                }
                return new AnyIpProvisionerSpec(pool.AnyIpAddRoute);
            default:
                return null;
        }
    }

    /// <summary>Why <paramref name="name"/> cannot name an interface, or null (IFNAMSIZ is 16 with its NUL).</summary>
    internal static string? InterfaceProblem(string? name) =>
        string.IsNullOrWhiteSpace(name) ? "no interface is named"
        : name.Trim().Length > 15 || name.Contains('/') || name.Trim() is "." or ".." || name.Trim().Any(char.IsWhiteSpace) ? $"'{name}' is not an interface name (at most 15 characters, no '/' or spaces)"
        : null;

    private static DhcpSpec? Dhcp(PoolSettings pool, AddressFamily? family, ProvisionerSpec? provisioner, SettingOrigins where, List<SettingProblem> problems)
    {
        int before = problems.Count;
        if (family == AddressFamily.InterNetworkV6)
            problems.Add(new(where.Of(P.Source), pool.Source, $"pool '{pool.Name}' is IPv6; SockShim's DHCP client is DHCPv4", "an IPv4 pool, such as 198.51.100.0/24"));
        if (provisioner is LoopbackProvisionerSpec)
            problems.Add(new(where.Of(P.Provisioner), pool.Provisioner, "a DHCP lease goes on the interface: use the netlink (or anyip) provisioner", "netlink"));
        if (InterfaceProblem(pool.Interface) is { } why && provisioner is not NetlinkProvisionerSpec)
            problems.Add(new(where.Of(P.Interface), pool.Interface ?? "", $"DHCP pool '{pool.Name}' needs the interface whose DHCP server it asks: {why}", "eth0"));
        if (pool.LeaseSeconds is < 1)
            problems.Add(new(where.Of(P.LeaseSeconds), pool.LeaseSeconds.ToString()!, "a lease time is at least 1 second", "3600"));
        if (pool.DhcpTimeout is <= 0 or > 3600 || double.IsNaN(pool.DhcpTimeout))
            problems.Add(new(where.Of(P.DhcpTimeout), pool.DhcpTimeout.ToString(System.Globalization.CultureInfo.InvariantCulture), "the DHCP timeout is from 0 to 3600 seconds", "15"));
        if (pool.DhcpProbe is < 0 or > 10_000)
            problems.Add(new(where.Of(P.DhcpProbe), pool.DhcpProbe.ToString(), "the ARP probe wait is from 0 (no probe) to 10000 milliseconds", "200"));
        return problems.Count > before ? null
            : new DhcpSpec(TimeSpan.FromSeconds(pool.DhcpTimeout), pool.LeaseSeconds is { } s ? (uint)s : null, TimeSpan.FromMilliseconds(pool.DhcpProbe), pool.DhcpRate);
    }

    private static void CheckFamily(PoolSettings pool, AddressFamily? family, List<ParsedRange> list, PoolField field, string what, SettingOrigins where, List<SettingProblem> problems)
    {
        foreach (var (range, i, _) in list)
        {
            if (family is null || range.Family == family) continue;
            problems.Add(new(where.Of(field, i), range.ToString(),
                $"pool '{pool.Name}' is {AddressMath.FamilyName(family.Value)}, and this is an {AddressMath.FamilyName(range.Family)} {what}",
                family == AddressFamily.InterNetwork ? "127.100.0.0/16" : "2001:db8:1::/112"));
        }
    }

    /// <summary>A word of a closed set, compared once, one way (trimmed, case-insensitive).</summary>
    internal static bool TryWord<T>(string text, out T value, params (string Word, T Value)[] known) where T : struct, Enum
    {
        foreach (var (word, v) in known)
            if (string.Equals(text.Trim(), word, StringComparison.OrdinalIgnoreCase)) { value = v; return true; }
        value = default;
        return false;
    }

    private static T? Word<T>(string text, PoolField field, SettingOrigins where, List<SettingProblem> problems, string reason, string example, params (string Word, T Value)[] known)
        where T : struct, Enum
    {
        if (TryWord(text, out T value, known)) return value;
        problems.Add(new(where.Of(field), text, reason, example));
        return null;
    }

    // One item of a ranges or exclusions list: a class, so the lists of them run the runtime's
    // precompiled shared code at an app's first socket (see AddressRange).
    private sealed record ParsedRange(AddressRange Range, int Index, int? Prefix);

    private static List<ParsedRange> Parse(List<string> texts, PoolField field, SettingOrigins where, List<SettingProblem> problems)
    {
        var result = new List<ParsedRange>();
        for (int i = 0; i < texts.Count; i++)
        {
            if (AddressRange.TryParse(texts[i], out var range, out var error))
                result.Add(new(range, i, texts[i].Contains('/') ? int.Parse(texts[i][(texts[i].IndexOf('/') + 1)..]) : null));
            else problems.Add(new(where.Of(field, i), texts[i], $"not a CIDR, range or address: {error}", AddressRange.Examples));
        }
        return result;
    }
}

/// <summary>The typed spec of settings made in code (hosts that configure SockShim themselves,
/// tests): the same checks as the configuration files get, naming pools and fields.</summary>
internal static class StackSpecs
{
    public static StackSpec From(StackSettings settings)
    {
        var problems = new List<SettingProblem>();
        SpecBuilder.CheckStateDirectory(settings.StateDirectory, () => "state directory", problems);
        var rules = SpecBuilder.Destinations(settings.Destinations, () => "destinations", problems);
        var pools = new List<PoolSpec>();
        foreach (var p in settings.Pools)
            if (SpecBuilder.Build(p, SettingOrigins.InCode(p.Name), problems) is { } spec) pools.Add(spec);
        if (problems.Count > 0) throw new ConfigurationException(problems);
        return new StackSpec(pools, settings.Allocation, settings.StateDirectory, settings.Mode, rules, settings.WildcardBind);
    }
}
