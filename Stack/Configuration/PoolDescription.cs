using System.Text;
using System.Text.Json;
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

    // Read with JsonDocument, written here by hand: the reflection serializer JIT-compiled about
    // 200 methods at every app's first socket, and even Utf8JsonWriter cost that socket 14 ms
    // (loading System.Text.Json and building its default encoder), for one small fixed object.
    // The text is the serializer's (PascalCase names, enums as their names, nulls written, its
    // default escaping), so a description written by an earlier version compares equal and reads.

    public string ToJson()
    {
        var json = new StringBuilder(256).Append('{');
        Property(json, nameof(Name)).Append(Quote(Name));
        Property(json, nameof(Source)).Append(Quote(Source.ToString()));
        Property(json, nameof(Provisioner)).Append(Quote(Provisioner.ToString()));
        Property(json, nameof(Interface)).Append(Interface is null ? "null" : Quote(Interface));
        Property(json, nameof(Ranges)).Append('[').AppendJoin(',', Ranges.Select(Quote)).Append(']');
        Property(json, nameof(Exclude)).Append('[').AppendJoin(',', Exclude.Select(Quote)).Append(']');
        Property(json, nameof(Strategy)).Append(Quote(Strategy.ToString()));
        Property(json, nameof(MaxAddresses)).Append(MaxAddresses.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Property(json, nameof(Dscp)).Append(Dscp is { } dscp ? dscp.ToString(System.Globalization.CultureInfo.InvariantCulture) : "null");
        return json.Append('}').ToString();

        static StringBuilder Property(StringBuilder json, string name) =>
            (json.Length > 1 ? json.Append(',') : json).Append('"').Append(name).Append("\":");
    }

    /// <summary>A JSON string as System.Text.Json's default encoder writes it: printable ASCII as
    /// it is, but for the characters HTML gives meaning to; a backslash and the common controls
    /// in short form; everything else as \uXXXX (each UTF-16 unit), and a surrogate without its
    /// pair as the replacement character U+FFFD.</summary>
    internal static string Quote(string text)
    {
        var quoted = new StringBuilder(text.Length + 2).Append('"');
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsSurrogate(c))
            {
                bool paired = char.IsHighSurrogate(c) ? i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]) : i > 0 && char.IsHighSurrogate(text[i - 1]);
                if (!paired) c = '\uFFFD';
            }
            switch (c)
            {
                case '\\': quoted.Append("\\\\"); break;
                case '\b': quoted.Append("\\b"); break;
                case '\t': quoted.Append("\\t"); break;
                case '\n': quoted.Append("\\n"); break;
                case '\f': quoted.Append("\\f"); break;
                case '\r': quoted.Append("\\r"); break;
                case >= ' ' and <= '~' and not ('"' or '&' or '\'' or '+' or '<' or '>' or '`'): quoted.Append(c); break;
                default: quoted.Append("\\u").Append(Hex[c >> 12]).Append(Hex[(c >> 8) & 0xF]).Append(Hex[(c >> 4) & 0xF]).Append(Hex[c & 0xF]); break;
            }
        }
        return quoted.Append('"').ToString();
    }

    private const string Hex = "0123456789ABCDEF";

    /// <summary>The description in <paramref name="json"/>, or null when it is not one: not an
    /// object, a property of the wrong kind, an enum name that is not one of its values, a list
    /// with anything but strings. (It comes from files and a socket other accounts may write.)</summary>
    public static PoolDescription? FromJson(string? json)
    {
        if (json is null) return null;
        try
        {
            using var document = JsonDocument.Parse(json);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object) return null;
            var d = new PoolDescription();
            foreach (var p in root.EnumerateObject())
            {
                var v = p.Value;
                switch (p.Name)
                {
                    case nameof(Name) when v.ValueKind == JsonValueKind.String: d = d with { Name = v.GetString()! }; break;
                    case nameof(Source) when Enum(v, typeof(SourceKind)) is SourceKind source: d = d with { Source = source }; break;
                    case nameof(Provisioner) when Enum(v, typeof(ProvisionerKind)) is ProvisionerKind provisioner: d = d with { Provisioner = provisioner }; break;
                    case nameof(Interface) when v.ValueKind is JsonValueKind.String or JsonValueKind.Null: d = d with { Interface = v.GetString() }; break;
                    case nameof(Ranges) when Strings(v) is { } ranges: d = d with { Ranges = ranges }; break;
                    case nameof(Exclude) when Strings(v) is { } exclude: d = d with { Exclude = exclude }; break;
                    case nameof(Strategy) when Enum(v, typeof(AllocationStrategy)) is AllocationStrategy strategy: d = d with { Strategy = strategy }; break;
                    case nameof(MaxAddresses) when v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int max): d = d with { MaxAddresses = max }; break;
                    case nameof(Dscp) when v.ValueKind == JsonValueKind.Null: d = d with { Dscp = null }; break;
                    case nameof(Dscp) when v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int dscp): d = d with { Dscp = dscp }; break;
                    case nameof(Name) or nameof(Source) or nameof(Provisioner) or nameof(Interface) or nameof(Ranges) or nameof(Exclude)
                        or nameof(Strategy) or nameof(MaxAddresses) or nameof(Dscp):
                        return null; // a known property with a value it cannot have
                }
            }
            return d;
        }
        // GetString throws InvalidOperationException for a string holding half a surrogate pair.
        catch (Exception ex) when (ex is JsonException or InvalidOperationException) { return null; }

        // A name of the enum (any case), or one of its values as a number: what the serializer's
        // converter read (a helper of the last version sent numbers).
        static object? Enum(JsonElement v, Type type)
        {
            object? value = null;
            if (v.ValueKind == JsonValueKind.String && v.GetString() is { Length: > 0 } name && !char.IsAsciiDigit(name[0]) && name[0] != '-')
                System.Enum.TryParse(type, name, ignoreCase: true, out value);
            else if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int number))
                value = System.Enum.ToObject(type, number);
            return value is not null && System.Enum.IsDefined(type, value) ? value : null;
        }

        static List<string>? Strings(JsonElement v)
        {
            if (v.ValueKind != JsonValueKind.Array) return null;
            var list = new List<string>(v.GetArrayLength());
            foreach (var item in v.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.String) return null;
                list.Add(item.GetString()!);
            }
            return list;
        }
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
