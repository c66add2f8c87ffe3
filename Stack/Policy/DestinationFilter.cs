using System.Net;
using SockShim.Stack.Addressing;

namespace SockShim.Stack.Policy;

/// <summary>Which destinations get a socket a new address: CIDRs, each with an optional port
/// or port range (<c>127.0.0.0/8</c>, <c>198.51.100.0/24:443</c>, <c>[2001:db8::/32]:8000-8099</c>).</summary>
public sealed class DestinationFilter
{
    public sealed record Rule(AddressRange Range, int FirstPort, int LastPort)
    {
        public override string ToString() =>
            FirstPort == 0 && LastPort == 65535 ? Range.ToString()
            : Range.Family == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{Range}]:{Ports}" : $"{Range}:{Ports}";
        private string Ports => FirstPort == LastPort ? $"{FirstPort}" : $"{FirstPort}-{LastPort}";
    }

    public IReadOnlyList<Rule> Rules { get; }

    // IPv4 rules again as plain integers: this runs before every connect of an app in mode
    // all, right after a system call has left the caches cold, so it touches as little as it can.
    private readonly (uint First, uint Last, int FirstPort, int LastPort)[] _v4;

    public DestinationFilter(IReadOnlyList<Rule> rules)
    {
        Rules = rules;
        // Loops into an array: a list or LINQ over this tuple is JIT-compiled at the app's first socket.
        int count = 0;
        foreach (var r in rules) if (r.Range.Family == System.Net.Sockets.AddressFamily.InterNetwork) count++;
        _v4 = new (uint, uint, int, int)[count];
        count = 0;
        foreach (var r in rules)
            if (r.Range.Family == System.Net.Sockets.AddressFamily.InterNetwork) _v4[count++] = ((uint)r.Range.FirstNumber.Low, (uint)r.Range.LastNumber.Low, r.FirstPort, r.LastPort);
    }

    /// <summary>Every destination.</summary>
    public static DestinationFilter Any { get; } = new([]);

    public bool IsAny => Rules.Count == 0;

    public const string Example = "127.0.0.0/8, 198.51.100.0/24:443 or [2001:db8::/32]:8000-8099";

    public bool Matches(IPEndPoint destination)
    {
        if (IsAny) return true;
        var address = destination.Address.IsIPv4MappedToIPv6 ? destination.Address.MapToIPv4() : destination.Address;
        int port = destination.Port;
        if (address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork)
        {
            uint n = (uint)Addressing.AddressNumber.Of(address).Low;
            foreach (var r in _v4)
                if (n >= r.First && n <= r.Last && port >= r.FirstPort && port <= r.LastPort) return true;
            return false;
        }
        foreach (var rule in Rules)
            if (rule.Range.Contains(address) && destination.Port >= rule.FirstPort && destination.Port <= rule.LastPort) return true;
        return false;
    }

    public static bool TryParseRule(string text, out Rule rule, out string error)
    {
        rule = null!;
        text = text.Trim();
        string rangeText = text, portText = "";
        if (text.StartsWith('['))
        {
            int close = text.IndexOf(']');
            if (close < 0) { error = "a '[' has no matching ']'"; return false; }
            rangeText = text[1..close];
            string rest = text[(close + 1)..];
            if (rest.Length > 0)
            {
                if (rest[0] != ':') { error = $"'{rest}' after ']' must be :port or :first-last"; return false; }
                portText = rest[1..];
            }
        }
        else if (text.Count(c => c == ':') == 1)
        {
            int colon = text.IndexOf(':');
            rangeText = text[..colon];
            portText = text[(colon + 1)..];
        }
        if (!AddressRange.TryParse(rangeText, out var range, out error)) return false;
        int first = 0, last = 65535;
        if (portText.Length > 0)
        {
            var parts = portText.Split('-');
            if (parts.Length > 2 || !int.TryParse(parts[0], out first) || !int.TryParse(parts[^1], out last) || first < 1 || last > 65535 || first > last)
            {
                error = $"'{portText}' is not a port or a port range from 1 to 65535";
                return false;
            }
        }
        rule = new Rule(range, first, last);
        return true;
    }

    public override string ToString() => IsAny ? "any destination" : string.Join(", ", Rules);
}
