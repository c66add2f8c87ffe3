using System.Text.Json;
using System.Text.Json.Serialization;
using SockShim.Stack.Addressing;

namespace SockShim.Stack.Configuration;

/// <summary>
/// A pool in text, written beside its table and sent by the helper to its clients: enough for
/// `status`, `gc` and a helper's client to rebuild the pool's numbered addresses without its
/// configuration. The exclusions include the addresses a prefix keeps for itself.
/// </summary>
internal sealed record PoolDescription
{
    public string Name { get; init; } = "";
    public SourceKind Source { get; init; }
    public ProvisionerKind Provisioner { get; init; }
    public string? Interface { get; init; }
    public List<string> Ranges { get; init; } = new();
    public List<string> Exclude { get; init; } = new();
    public AllocationStrategy Strategy { get; init; }
    public int MaxAddresses { get; init; }
    public int? Dscp { get; init; }

    private static readonly JsonSerializerOptions s_json = new() { Converters = { new JsonStringEnumConverter() } };

    public string ToJson() => JsonSerializer.Serialize(this, s_json);

    /// <summary>The description in <paramref name="json"/>, or null when it is not one.</summary>
    public static PoolDescription? FromJson(string? json)
    {
        if (json is null) return null;
        try { return JsonSerializer.Deserialize<PoolDescription>(json, s_json); }
        catch (JsonException) { return null; }
    }

    public static PoolDescription Of(LocalPoolSpec pool) => new()
    {
        Name = pool.Name,
        Source = pool.Source,
        Provisioner = pool.Provisioner.Kind,
        Interface = (pool as DhcpPoolSpec)?.Interface ?? (pool.Provisioner as NetlinkProvisionerSpec)?.Interface,
        Ranges = pool.Addresses.Ranges.Select(r => r.ToString()).ToList(),
        Exclude = pool.Addresses.Exclusions.Select(r => r.ToString()).ToList(),
        Strategy = pool.Addresses.Strategy,
        MaxAddresses = pool.Addresses.MaxAddresses,
        Dscp = pool.Dscp,
    };

    /// <summary>The pool's numbered addresses, or null when the description cannot give them.</summary>
    public PoolDefinition? Definition()
    {
        var ranges = new List<AddressRange>();
        var exclusions = new List<AddressRange>();
        foreach (var r in Ranges) if (AddressRange.TryParse(r, out var x, out _)) ranges.Add(x); else return null;
        foreach (var r in Exclude) if (AddressRange.TryParse(r, out var x, out _)) exclusions.Add(x); else return null;
        if (ranges.Count == 0 || ranges.Concat(exclusions).Any(r => r.Family != ranges[0].Family) || MaxAddresses is < 1 or > PoolSettings.MaxTableAddresses) return null;
        return new PoolDefinition(Name, ranges, exclusions, Strategy, MaxAddresses);
    }
}
