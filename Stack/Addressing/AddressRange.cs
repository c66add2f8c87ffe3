using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.Sockets;

namespace SockShim.Stack.Addressing;

/// <summary>An inclusive range of addresses of one family, written as a CIDR
/// (<c>127.100.0.0/16</c>), a range (<c>127.100.0.10-127.100.0.99</c>) or one address.</summary>
/// <remarks>A class, not a struct: every app under the launcher builds its pools at its first
/// socket, and the runtime's lists, sorts and LINQ over a reference type run their precompiled
/// shared code, where over a struct of this assembly each is JIT-compiled there and then (about
/// 20 ms of that first socket, measured). Its bounds are kept as <see cref="AddressNumber"/>s for
/// the same reason; <see cref="First"/> and <see cref="Last"/> give them as UInt128.</remarks>
public sealed record AddressRange
{
    public AddressRange(AddressFamily Family, UInt128 First, UInt128 Last)
        : this(Family, AddressNumber.FromUInt128(First), AddressNumber.FromUInt128(Last)) { }

    internal AddressRange(AddressFamily family, AddressNumber first, AddressNumber last) => (Family, FirstNumber, LastNumber) = (family, first, last);

    public AddressFamily Family { get; init; }
    public UInt128 First { get => FirstNumber.ToUInt128(); init => FirstNumber = AddressNumber.FromUInt128(value); }
    public UInt128 Last { get => LastNumber.ToUInt128(); init => LastNumber = AddressNumber.FromUInt128(value); }
    public UInt128 Count => NumberCount.ToUInt128();

    internal AddressNumber FirstNumber { get; init; }
    internal AddressNumber LastNumber { get; init; }
    /// <summary>How many addresses; 0 for the whole IPv6 space (2^128 does not fit).</summary>
    internal AddressNumber NumberCount => LastNumber - FirstNumber + 1;

    public void Deconstruct(out AddressFamily Family, out UInt128 First, out UInt128 Last) => (Family, First, Last) = (this.Family, this.First, this.Last);

    /// <summary>127.0.0.0/8: every address of it is local to the host through lo.</summary>
    public static AddressRange Loopback { get; } = new(AddressFamily.InterNetwork, new AddressNumber(0, 0x7F00_0000), new AddressNumber(0, 0x7FFF_FFFF));

    public IPAddress FirstAddress => FirstNumber.ToAddress(Family);
    public IPAddress LastAddress => LastNumber.ToAddress(Family);

    public bool Contains(IPAddress address) =>
        address.AddressFamily == Family && AddressNumber.Of(address) is var n && n >= FirstNumber && n <= LastNumber;

    public bool IsWithin(AddressRange outer) => Family == outer.Family && FirstNumber >= outer.FirstNumber && LastNumber <= outer.LastNumber;

    /// <summary>The prefix length when the range is exactly one prefix (a CIDR), else null.</summary>
    internal int? PrefixLength
    {
        get
        {
            var size = NumberCount;
            // The whole IPv6 space: its 2^128 addresses wrap the count to 0.
            if (size == AddressNumber.Zero) return 0;
            return size.IsPow2 && (FirstNumber & (size - 1)) == AddressNumber.Zero ? AddressMath.Bits(Family) - size.Log2 : null;
        }
    }

    /// <summary>As a CIDR when the range is exactly one prefix, else as first-last.</summary>
    public override string ToString() =>
        FirstNumber == LastNumber ? $"{FirstAddress}"
        : PrefixLength is { } bits ? $"{FirstAddress}/{bits}"
        : $"{FirstAddress}-{LastAddress}";

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
            // Decimal digits without a leading zero, as for the quads: "024" (or "+24", " 24") is a
            // typo more often than 24.
            if (!IsPlainDecimal(lengthText) || !int.TryParse(lengthText, out int prefix) || prefix > bits)
            {
                error = $"the prefix length '{lengthText}' is not a whole number from 0 to {bits} for {AddressMath.FamilyName(network.AddressFamily)}";
                return false;
            }
            var hostMask = prefix == bits ? AddressNumber.Zero : (AddressNumber.One << (bits - prefix)) - 1;
            var value = AddressNumber.Of(network);
            if ((value & hostMask) != AddressNumber.Zero)
            {
                var bare = (value & ~hostMask).ToAddress(network.AddressFamily);
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
            AddressNumber a = AddressNumber.Of(first), b = AddressNumber.Of(last);
            if (a > b)
            {
                error = $"the range is empty: {first} comes after {last}";
                return false;
            }
            range = new AddressRange(first.AddressFamily, a, b);
            return true;
        }

        if (!TryParseAddress(text, out var single, out error)) return false;
        var n = AddressNumber.Of(single);
        range = new AddressRange(single.AddressFamily, n, n);
        return true;
    }

    // A loop, not Enumerable.All<char>: that instantiation has no precompiled code, and every
    // app under the launcher parses its pools at its first socket.
    private static bool IsPlainDecimal(string text)
    {
        if (text.Length is 0 or > 3 || (text.Length > 1 && text[0] == '0')) return false;
        foreach (char c in text)
            if (!char.IsAsciiDigit(c)) return false;
        return true;
    }

    private static bool TryParseAddress(string text, out IPAddress address, out string error)
    {
        text = text.Trim();
        // IPAddress.TryParse accepts shorthand such as "127.1", bare integers and octal or hex
        // parts ("127.100.0.010" is .8 to it); a pool written that way is almost always a typo,
        // so only full dotted quads in decimal (as inet_pton(3) takes them) and IPv6 text are
        // taken. The quads are read here: IPAddress.TryParse's parser, generic over the
        // character type, is compiled at run time at its first call, and every app under the
        // launcher parses its pools at its first socket (that connection 35.4 -> 34.3 ms).
        bool parsed = !text.Contains(':')
            ? TryParseDottedQuad(text, out address!)
            : IPAddress.TryParse(text, out address!) && address.AddressFamily == AddressFamily.InterNetworkV6 && address.ScopeId == 0
              // A dotted quad at the end of IPv6 text (::ffff:a.b.c.d) keeps the quad's rules.
              && (!text.Contains('.') || TryParseDottedQuad(text.AsSpan(text.LastIndexOf(':') + 1), out _));
        if (!parsed)
        {
            error = $"'{text}' is not an IP address";
            address = IPAddress.None;
            return false;
        }
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        error = "";
        return true;
    }

    /// <summary>Four decimal numbers from 0 to 255, dot-separated, none with a leading zero.</summary>
    private static bool TryParseDottedQuad(ReadOnlySpan<char> text, [NotNullWhen(true)] out IPAddress? address)
    {
        address = null;
        uint value = 0;
        int i = 0;
        for (int part = 0; part < 4; part++)
        {
            if (part > 0 && (i >= text.Length || text[i++] != '.')) return false;
            int start = i;
            uint octet = 0;
            while (i < text.Length && i - start < 3 && char.IsAsciiDigit(text[i])) octet = octet * 10 + (uint)(text[i++] - '0');
            if (i == start || octet > 255 || (i - start > 1 && text[start] == '0')) return false;
            value = value << 8 | octet;
        }
        if (i != text.Length) return false;
        address = new AddressNumber(0, value).ToAddress(AddressFamily.InterNetwork);
        return true;
    }
}
