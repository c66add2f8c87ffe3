using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.Sockets;

namespace SockShim.Stack.Addressing;

/// <summary>An inclusive range of addresses of one family, written as a CIDR
/// (<c>127.100.0.0/16</c>), a range (<c>127.100.0.10-127.100.0.99</c>) or one address.</summary>
/// <remarks>A class, not a struct: every app under the launcher builds its pools at its first
/// socket, and the runtime's lists, sorts and LINQ over a reference type run their precompiled
/// shared code, where over a struct of this assembly each is JIT-compiled there and then (about
/// 20 ms of that first socket, measured).</remarks>
public sealed record AddressRange(AddressFamily Family, UInt128 First, UInt128 Last)
{
    public UInt128 Count => Last - First + 1;

    /// <summary>127.0.0.0/8: every address of it is local to the host through lo.</summary>
    public static AddressRange Loopback { get; } = new(AddressFamily.InterNetwork, 0x7F00_0000, 0x7FFF_FFFF);

    public IPAddress FirstAddress => AddressMath.FromNumber(First, Family);
    public IPAddress LastAddress => AddressMath.FromNumber(Last, Family);

    public bool Contains(IPAddress address) =>
        address.AddressFamily == Family && AddressMath.ToNumber(address) is var n && n >= First && n <= Last;

    public bool IsWithin(AddressRange outer) => Family == outer.Family && First >= outer.First && Last <= outer.Last;

    /// <summary>As a CIDR when the range is exactly one prefix, else as first-last.</summary>
    public override string ToString()
    {
        if (First == Last) return $"{FirstAddress}";
        UInt128 size = Count;
        if (size != 0 && UInt128.IsPow2(size) && (First & (size - 1)) == 0)
            return $"{FirstAddress}/{AddressMath.Bits(Family) - (int)UInt128.Log2(size)}";
        return $"{FirstAddress}-{LastAddress}";
    }

    public const string Examples = "127.100.0.0/16, 127.100.0.10-127.100.0.200, or 2001:db8:1::/112";

    /// <summary>Parses one range; on failure <paramref name="error"/> says what is wrong with the text.</summary>
    public static bool TryParse(string text, [NotNullWhen(true)] out AddressRange? range, out string error)
    {
        range = null;
        text = text.Trim();
        if (text.Length == 0) { error = "it is empty"; return false; }

        int slash = text.IndexOf('/');
        if (slash >= 0)
        {
            string addressText = text[..slash], lengthText = text[(slash + 1)..];
            if (!TryParseAddress(addressText, out var network, out error)) return false;
            int bits = AddressMath.Bits(network.AddressFamily);
            if (!int.TryParse(lengthText, out int prefix) || prefix < 0 || prefix > bits)
            {
                error = $"the prefix length '{lengthText}' is not a whole number from 0 to {bits} for {AddressMath.FamilyName(network.AddressFamily)}";
                return false;
            }
            UInt128 hostMask = prefix == bits ? UInt128.Zero : (UInt128.One << (bits - prefix)) - 1;
            UInt128 value = AddressMath.ToNumber(network);
            if ((value & hostMask) != 0)
            {
                var bare = AddressMath.FromNumber(value & ~hostMask, network.AddressFamily);
                error = $"'{addressText}' has host bits set for a /{prefix}; the network is {bare}/{prefix}";
                return false;
            }
            range = new AddressRange(network.AddressFamily, value, value | hostMask);
            return true;
        }

        int dash = text.IndexOf('-');
        if (dash >= 0)
        {
            if (!TryParseAddress(text[..dash], out var first, out error)) return false;
            if (!TryParseAddress(text[(dash + 1)..], out var last, out error)) return false;
            if (first.AddressFamily != last.AddressFamily)
            {
                error = $"it mixes {AddressMath.FamilyName(first.AddressFamily)} and {AddressMath.FamilyName(last.AddressFamily)}";
                return false;
            }
            UInt128 a = AddressMath.ToNumber(first), b = AddressMath.ToNumber(last);
            if (a > b)
            {
                error = $"the range is empty: {first} comes after {last}";
                return false;
            }
            range = new AddressRange(first.AddressFamily, a, b);
            return true;
        }

        if (!TryParseAddress(text, out var single, out error)) return false;
        var n = AddressMath.ToNumber(single);
        range = new AddressRange(single.AddressFamily, n, n);
        return true;
    }

    private static bool TryParseAddress(string text, out IPAddress address, out string error)
    {
        text = text.Trim();
        // IPAddress.TryParse accepts shorthand such as "127.1" and bare integers; a pool written
        // that way is almost always a typo, so only full dotted quads and IPv6 text are taken.
        bool looksV4 = !text.Contains(':');
        if (!IPAddress.TryParse(text, out address!) || (looksV4 && text.Split('.').Length != 4) || (address.AddressFamily == AddressFamily.InterNetworkV6 && address.ScopeId != 0))
        {
            error = $"'{text}' is not an IP address";
            address = IPAddress.None;
            return false;
        }
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        error = "";
        return true;
    }
}
