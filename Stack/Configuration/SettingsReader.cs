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
        var allocation = AllocationTime.Eager;
        if (root[SettingsLoader.AllocationKey] is { } a)
        {
            switch (a.Trim().ToLowerInvariant())
            {
                case "eager": allocation = AllocationTime.Eager; break;
                case "lazy": allocation = AllocationTime.Lazy; break;
                default: _problems.Add(new(Where(SettingsLoader.AllocationKey), a, "allocation must be eager (at socket creation) or lazy (at bind/connect)", "lazy")); break;
            }
        }

        string stateDir = root[SettingsLoader.StateDirKey] is { Length: > 0 } d ? d : StackSettings.DefaultStateDirectory;
        if (!System.IO.Path.IsPathFullyQualified(stateDir))
            _problems.Add(new(Where(SettingsLoader.StateDirKey), stateDir, "the state directory must be an absolute path", "/dev/shm/sockshim"));

        var wildcard = WildcardBind.Keep;
        if (root[SettingsLoader.WildcardBindKey] is { } w)
        {
            switch (w.Trim().ToLowerInvariant())
            {
                case "keep": wildcard = WildcardBind.Keep; break;
                case "own": wildcard = WildcardBind.Own; break;
                default: _problems.Add(new(Where(SettingsLoader.WildcardBindKey), w, "a wildcard bind either keeps the common address (keep) or gives the socket its own address (own)", "own")); break;
            }
        }

        var mode = Policy.InterceptMode.Tuple;
        if (root[SettingsLoader.ModeKey] is { } m)
        {
            switch (m.Trim().ToLowerInvariant())
            {
                case "tuple": mode = Policy.InterceptMode.Tuple; break;
                case "all": mode = Policy.InterceptMode.All; break;
                case "attribute": mode = Policy.InterceptMode.Attribute; break;
                default: _problems.Add(new(Where(SettingsLoader.ModeKey), m, "mode must be tuple (only AF_INET_TUPLE sockets), all (every TCP/UDP client socket) or attribute (sockets created in [NewAddressPerSocket] code)", "all")); break;
            }
        }

        var destinations = ReadList(root.GetSection(SettingsLoader.DestinationsKey));
        var rules = new List<DestinationFilter.Rule>();
        for (int i = 0; i < destinations.Count; i++)
        {
            if (DestinationFilter.TryParseRule(destinations[i], out var rule, out var why)) rules.Add(rule);
            else _problems.Add(new(Where(SettingsLoader.DestinationsKey), destinations[i], $"not a destination: {why}", DestinationFilter.Example));
        }

        var pools = root.GetSection("Pools").GetChildren().Select(ReadPool).ToList();
        var first = pools.Count > 0 ? pools[0] : StackSettings.DefaultPool;
        var flat = ApplyFlatKeys(first, builtIn: pools.Count == 0);
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
        return new StackSpec(specs, allocation, stateDir, mode, rules, wildcard) { Settings = pools };
    }

    // A pool field may come from the flat keys (SOCKSHIM_POOL, --pool) or from the file's pool list.
    private string WhereField(string prefix, int poolIndex, string field, int? index)
    {
        string flatKey = field switch
        {
            "Ranges" => SettingsLoader.PoolKey,
            "Exclude" => SettingsLoader.ExcludeKey,
            _ => field,
        };
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

    private PoolSettings ReadPool(IConfigurationSection s, int i)
    {
        string name = s["Name"] ?? $"pool{i}";
        var strategy = ReadStrategy(s["Strategy"], $"Pools:{i}:Strategy");
        return new PoolSettings
        {
            Name = name,
            Ranges = ReadList(s.GetSection("Ranges")),
            Exclude = ReadList(s.GetSection("Exclude")),
            Strategy = strategy ?? AllocationStrategy.LeastRecentlyReleased,
            Provisioner = s["Provisioner"] ?? "loopback",
            Family = s["Family"],
            Interface = s["Interface"],
            Announce = ReadBool(s["Announce"], $"Pools:{i}:Announce") ?? false,
            AnyIpAddRoute = ReadBool(s["AnyIpAddRoute"], $"Pools:{i}:AnyIpAddRoute") ?? false,
            MaxAddresses = ReadInt(s["MaxAddresses"], $"Pools:{i}:MaxAddresses") ?? PoolSettings.DefaultMaxAddresses,
            Source = s["Source"] ?? "static",
            Prefetch = ReadInt(s["Prefetch"], $"Pools:{i}:Prefetch") ?? 0,
            LeaseSeconds = ReadInt(s["LeaseSeconds"], $"Pools:{i}:LeaseSeconds"),
            DhcpTimeout = ReadDouble(s["DhcpTimeout"], $"Pools:{i}:DhcpTimeout") ?? 15,
            DhcpProbe = ReadInt(s["DhcpProbe"], $"Pools:{i}:DhcpProbe") ?? 0,
            Helper = s["Helper"],
            Dscp = s["Dscp"],
        };
    }

    private PoolSettings ApplyFlatKeys(PoolSettings p, bool builtIn)
    {
        var ranges = Split(root[SettingsLoader.PoolKey]);
        var exclude = Split(root[SettingsLoader.ExcludeKey]);
        return new PoolSettings
        {
            // The built-in pool is "loopback"; given other ranges it is no longer that pool.
            Name = root[SettingsLoader.PoolNameKey] ?? (builtIn && ranges is not null ? "default" : p.Name),
            Ranges = ranges ?? p.Ranges,
            // New ranges drop the default exclusions, which were written for the default range.
            Exclude = exclude ?? (ranges is null ? p.Exclude : new List<string>()),
            Strategy = ReadStrategy(root[SettingsLoader.StrategyKey], SettingsLoader.StrategyKey) ?? p.Strategy,
            Provisioner = root[SettingsLoader.ProvisionerKey] ?? p.Provisioner,
            Family = root[SettingsLoader.FamilyKey] ?? p.Family,
            Interface = root[SettingsLoader.InterfaceKey] ?? p.Interface,
            Announce = ReadBool(root[SettingsLoader.AnnounceKey], SettingsLoader.AnnounceKey) ?? p.Announce,
            AnyIpAddRoute = ReadBool(root[SettingsLoader.AnyIpAddRouteKey], SettingsLoader.AnyIpAddRouteKey) ?? p.AnyIpAddRoute,
            MaxAddresses = ReadInt(root[SettingsLoader.MaxAddressesKey], SettingsLoader.MaxAddressesKey) ?? p.MaxAddresses,
            Prefetch = ReadInt(root[SettingsLoader.PrefetchKey], SettingsLoader.PrefetchKey) ?? p.Prefetch,
            LeaseSeconds = ReadInt(root[SettingsLoader.LeaseSecondsKey], SettingsLoader.LeaseSecondsKey) ?? p.LeaseSeconds,
            DhcpTimeout = ReadDouble(root[SettingsLoader.DhcpTimeoutKey], SettingsLoader.DhcpTimeoutKey) ?? p.DhcpTimeout,
            DhcpProbe = ReadInt(root[SettingsLoader.DhcpProbeKey], SettingsLoader.DhcpProbeKey) ?? p.DhcpProbe,
            Helper = root[SettingsLoader.HelperKey] ?? p.Helper,
            Dscp = root[SettingsLoader.DscpKey] ?? p.Dscp,
            // Naming a helper makes it the source, as naming a DHCP source would.
            Source = root[SettingsLoader.SourceKey] ?? (root[SettingsLoader.HelperKey] is not null ? "helper" : p.Source),
        };
    }

    private AllocationStrategy? ReadStrategy(string? text, string key)
    {
        if (text is null) return null;
        if (SettingsLoader.TryParseStrategy(text, out var s)) return s;
        _problems.Add(new(Where(key), text, "unknown allocation strategy (known: sequential, random, lrr = least-recently-released)", "lrr"));
        return null;
    }

    private bool? ReadBool(string? text, string key)
    {
        if (text is null) return null;
        switch (text.Trim().ToLowerInvariant())
        {
            case "true" or "yes" or "1" or "on": return true;
            case "false" or "no" or "0" or "off": return false;
        }
        _problems.Add(new(Where(key), text, "not true or false", "true"));
        return null;
    }

    private int? ReadInt(string? text, string key)
    {
        if (text is null) return null;
        if (int.TryParse(text, out int n)) return n;
        _problems.Add(new(Where(key), text, "not a whole number", "65536"));
        return null;
    }

    private double? ReadDouble(string? text, string key)
    {
        if (text is null) return null;
        if (double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double n)) return n;
        _problems.Add(new(Where(key), text, "not a number", "15"));
        return null;
    }

    private static List<string> ReadList(IConfigurationSection section)
    {
        // A list may be written as a JSON array or as one comma-separated string.
        if (section.Value is { } single) return Split(single) ?? new();
        return section.GetChildren().Select(c => c.Value ?? "").ToList();
    }

    private static List<string>? Split(string? text) =>
        text is null ? null : text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToList();
}
