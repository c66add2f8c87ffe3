using Microsoft.Extensions.Configuration;
using SockShim.Stack.Addressing;
using SockShim.Stack.Policy;

namespace SockShim.Stack.Configuration;

/// <summary>Reads the layered configuration into <see cref="StackSettings"/>, checking every value.</summary>
internal sealed class SettingsReader(IConfigurationRoot root, string? file)
{
    private readonly List<SettingProblem> _problems = new();

    private string Where(string key) => SettingsLoader.Describe(root, key, file);

    public StackSpec Read()
    {
        var allocation = Word(SettingsLoader.AllocationKey, AllocationTime.Eager, "allocation must be eager (at socket creation) or lazy (at bind/connect)", "lazy",
            ("eager", AllocationTime.Eager), ("lazy", AllocationTime.Lazy));

        string stateDir = root[SettingsLoader.StateDirKey] is { Length: > 0 } d ? d : StackSettings.DefaultStateDirectory;
        SpecBuilder.CheckStateDirectory(stateDir, () => Where(SettingsLoader.StateDirKey), _problems);

        var wildcard = Word(SettingsLoader.WildcardBindKey, WildcardBind.Keep, "a wildcard bind either keeps the common address (keep) or gives the socket its own address (own)", "own",
            ("keep", WildcardBind.Keep), ("own", WildcardBind.Own));
        var mode = Word(SettingsLoader.ModeKey, InterceptMode.Tuple,
            "mode must be tuple (only AF_INET_TUPLE sockets), all (every TCP/UDP client socket) or attribute (sockets created in [NewAddressPerSocket] code)", "all",
            ("tuple", InterceptMode.Tuple), ("all", InterceptMode.All), ("attribute", InterceptMode.Attribute));

        var rules = SpecBuilder.Destinations(ReadList(root.GetSection(SettingsLoader.DestinationsKey)), () => Where(SettingsLoader.DestinationsKey), _problems);

        var pools = root.GetSection("Pools").GetChildren().Select((_, i) => Overlay(new PoolSettings { Name = $"pool{i}" }, $"Pools:{i}", builtIn: false)).ToList();
        var first = pools.Count > 0 ? pools[0] : StackSettings.DefaultPool;
        var flat = Overlay(first, section: null, builtIn: pools.Count == 0);
        if (pools.Count > 0) pools[0] = flat; else pools.Add(flat);

        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var specs = new List<PoolSpec>();
        for (int i = 0; i < pools.Count; i++)
        {
            var pool = pools[i];
            string prefix = i == 0 && pools.Count == 1 && root.GetSection("Pools").GetChildren().Any() is false ? "" : $"Pools:{i}:";
            if (!names.Add(pool.Name))
                _problems.Add(new(Where($"Pools:{i}:Name"), pool.Name, "two pools have this name", $"{pool.Name}-2"));
            int index = i;
            if (SpecBuilder.Build(pool, new SettingOrigins((field, item) => WhereField(prefix, index, field.ToString(), item)), _problems) is { } spec) specs.Add(spec);
        }

        if (_problems.Count > 0) throw new ConfigurationException(_problems);
        return new StackSpec(specs, allocation, stateDir, mode, rules, wildcard);
    }

    // A pool field may come from the flat keys (SOCKSHIM_POOL, --pool) or from the file's pool list.
    private string WhereField(string prefix, int poolIndex, string field, int? index)
    {
        string flatKey = FlatKey(field);
        if (poolIndex == 0 && root[flatKey] is not null)
        {
            string where = Where(flatKey);
            bool several = Split(root[flatKey])?.Count > 1;
            return index is { } n && several ? $"{where} (item {n + 1})" : where;
        }
        string key = $"Pools:{poolIndex}:{field}" + (index is { } j ? $":{j}" : "");
        if (root[key] is null && index is null && root.GetSection(key).GetChildren().Any() is false)
            return poolIndex == 0 && prefix == "" ? $"built-in default pool's {field.ToLowerInvariant()}" : $"pool {poolIndex} {field.ToLowerInvariant()}";
        return Where(key);
    }

    // The flat key of a pool field: --pool and SOCKSHIM_POOL are its ranges, --pool-name its name.
    private static string FlatKey(string field) => field switch { "Name" => SettingsLoader.PoolNameKey, "Ranges" => SettingsLoader.PoolKey, _ => field };

    /// <summary>One reader for a pool's keys, whether a file's pool (<c>Pools:N:Key</c>) or the
    /// flat keys that shape the first pool (SOCKSHIM_POOL, --pool).</summary>
    private PoolSettings Overlay(PoolSettings p, string? section, bool builtIn)
    {
        string Key(string field) => section is not null ? $"{section}:{field}" : FlatKey(field);
        string? Text(string field) => root[Key(field)];
        List<string>? List(string field) => root.GetSection(Key(field)) is var s && (s.Value is not null || s.GetChildren().Any()) ? ReadList(s) : null;
        var ranges = section is not null ? HostRanges(section, List("Ranges")) : List("Ranges");
        return new PoolSettings
        {
            // The built-in pool is "loopback"; given other ranges it is no longer that pool.
            Name = Text("Name") ?? (builtIn && ranges is not null ? "default" : p.Name),
            Ranges = ranges ?? p.Ranges,
            // New ranges drop the default exclusions, which were written for the default range.
            Exclude = List("Exclude") ?? (ranges is null ? p.Exclude : new List<string>()),
            Strategy = ReadStrategy(Text("Strategy"), Key("Strategy")) ?? p.Strategy,
            Provisioner = Text("Provisioner") ?? p.Provisioner,
            Family = Text("Family") ?? p.Family,
            Interface = Text("Interface") ?? p.Interface,
            Announce = ReadBool(Text("Announce"), Key("Announce")) ?? p.Announce,
            AnyIpAddRoute = ReadBool(Text("AnyIpAddRoute"), Key("AnyIpAddRoute")) ?? p.AnyIpAddRoute,
            MaxAddresses = ReadInt(Text("MaxAddresses"), Key("MaxAddresses")) ?? p.MaxAddresses,
            Prefetch = ReadInt(Text("Prefetch"), Key("Prefetch")) ?? p.Prefetch,
            LeaseSeconds = ReadInt(Text("LeaseSeconds"), Key("LeaseSeconds")) ?? p.LeaseSeconds,
            DhcpTimeout = ReadDouble(Text("DhcpTimeout"), Key("DhcpTimeout")) ?? p.DhcpTimeout,
            DhcpProbe = ReadInt(Text("DhcpProbe"), Key("DhcpProbe")) ?? p.DhcpProbe,
            ConflictProbe = ReadInt(Text("ConflictProbe"), Key("ConflictProbe")) ?? p.ConflictProbe,
            DhcpRate = ReadDouble(Text("DhcpRate"), Key("DhcpRate")) ?? p.DhcpRate,
            Helper = Text("Helper") ?? p.Helper,
            Dscp = Text("Dscp") ?? p.Dscp,
            // Naming a helper makes it the source, as naming a DHCP source would.
            Source = Text("Source") ?? (Text("Helper") is not null ? "helper" : p.Source),
        };
    }

    /// <summary>A pool shared by hosts, partitioned in one file: <c>"RangesByHost": { "web1":
    /// ["192.0.2.10-192.0.2.19"], "web2": [...] }</c> gives each host (by its name, any case) its
    /// own ranges, so no two hosts hand out one address and no probe is needed. The ranges of
    /// this host, <paramref name="ranges"/> when the pool is not partitioned.</summary>
    private List<string>? HostRanges(string section, List<string>? ranges)
    {
        var byHost = root.GetSection($"{section}:RangesByHost");
        var hosts = byHost.GetChildren().ToList();
        if (hosts.Count == 0) return ranges;
        string host = Environment.MachineName, where = Where($"{section}:RangesByHost");
        string listed = string.Join(", ", hosts.Select(h => h.Key));
        if (ranges is not null)
        {
            _problems.Add(new(where, listed, "a pool has Ranges (every host) or RangesByHost (each host its own), not both", $"\"RangesByHost\": {{ \"{host}\": [\"192.0.2.10-192.0.2.19\"] }}"));
            return ranges;
        }
        var mine = hosts.Where(h => string.Equals(h.Key, host, StringComparison.OrdinalIgnoreCase)).ToList();
        if (mine.Count != 1)
        {
            _problems.Add(new(where, listed, mine.Count == 0
                ? $"the pool's ranges are partitioned by host name, and this host, '{host}', has none"
                : $"this host, '{host}', is listed {mine.Count} times (names compare in any case)", $"\"{host}\": [\"192.0.2.10-192.0.2.19\"]"));
            return null;
        }
        return ReadList(mine[0]);
    }

    /// <summary>A setting of a closed set of words: compared once, one way (trimmed, any case).</summary>
    private T Word<T>(string key, T unset, string reason, string example, params (string Word, T Value)[] known) where T : struct, Enum =>
        Read(root[key], key, (string t, out T value) => SpecBuilder.TryWord(t, out value, known), reason, example) ?? unset;

    private AllocationStrategy? ReadStrategy(string? text, string key) => Read(text, key, (string t, out AllocationStrategy s) =>
        SpecBuilder.TryWord(t.Replace("-", "").Replace("_", ""), out s, ("sequential", AllocationStrategy.Sequential), ("random", AllocationStrategy.Random),
            ("lrr", AllocationStrategy.LeastRecentlyReleased), ("leastrecentlyreleased", AllocationStrategy.LeastRecentlyReleased),
            ("onegroup", AllocationStrategy.OneSolicitedNodeGroup), ("onesolicitednodegroup", AllocationStrategy.OneSolicitedNodeGroup)),
        "unknown allocation strategy (known: sequential, random, lrr = least-recently-released, one-group = IPv6 addresses in one solicited-node group)", "lrr");

    private delegate bool Parser<T>(string text, out T value);

    private T? Read<T>(string? text, string key, Parser<T> parse, string reason, string example) where T : struct
    {
        if (text is null) return null;
        if (parse(text.Trim(), out T value)) return value;
        _problems.Add(new(Where(key), text, reason, example));
        return null;
    }

    private bool? ReadBool(string? text, string key) => Read(text, key, (string t, out bool b) =>
        (b = t.ToLowerInvariant() is "true" or "yes" or "1" or "on") || t.ToLowerInvariant() is "false" or "no" or "0" or "off", "not true or false", "true");

    private int? ReadInt(string? text, string key) => Read<int>(text, key, int.TryParse, "not a whole number", "65536");

    private double? ReadDouble(string? text, string key) => Read(text, key, (string t, out double d) =>
        double.TryParse(t, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out d), "not a number", "15");

    private static List<string> ReadList(IConfigurationSection section)
    {
        // A list may be written as a JSON array or as one comma-separated string.
        if (section.Value is { } single) return Split(single) ?? new();
        return section.GetChildren().Select(c => c.Value ?? "").ToList();
    }

    private static List<string>? Split(string? text) =>
        text is null ? null : text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToList();
}
