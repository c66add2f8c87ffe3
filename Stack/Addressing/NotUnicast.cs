using System.Net.Sockets;

namespace SockShim.Stack.Addressing;

/// <summary>
/// The address blocks no socket can have as its own source (RFC 6890's special-purpose
/// registries): a pool holding one would put on an interface, and bind sockets to, an address
/// the kernel refuses or the network drops. (IPv4-mapped IPv6 text is read as IPv4, so it meets
/// the IPv4 blocks.) Built from numbers, not parsed: pools are checked at
/// an app's first socket, where parsing IPv6 text compiles IPAddress's parser.
/// </summary>
internal static class NotUnicast
{
    private static readonly (AddressRange Block, string What)[] Blocks =
    [
        (V4(0x0000_0000, 8), "'this network' addresses (0.0.0.0/8), never a host's own"),
        (V4(0xE000_0000, 4), "multicast addresses (224.0.0.0/4)"),
        (V4(0xF000_0000, 4), "reserved addresses (240.0.0.0/4, with the broadcast address 255.255.255.255)"),
        (new(AddressFamily.InterNetworkV6, AddressNumber.Zero, AddressNumber.Zero), "the unspecified address (::)"),
        (new(AddressFamily.InterNetworkV6, new AddressNumber(0xFF00_0000_0000_0000, 0), AddressNumber.MaxValue), "multicast addresses (ff00::/8)"),
    ];

    /// <summary>The first address of <paramref name="range"/> that lies in one of the blocks and
    /// that no exclusion takes out, with what the block is; null when there is none.</summary>
    public static (AddressNumber First, string What)? In(AddressRange range, IEnumerable<AddressRange> exclusions)
    {
        foreach (var (block, what) in Blocks)
        {
            if (block.Family != range.Family || block.LastNumber < range.FirstNumber || block.FirstNumber > range.LastNumber) continue;
            var from = AddressNumber.Max(block.FirstNumber, range.FirstNumber);
            var to = AddressNumber.Min(block.LastNumber, range.LastNumber);
            if (FirstNotExcluded(from, to, exclusions.Where(e => e.Family == range.Family).ToList()) is { } left) return (left, what);
        }
        return null;
    }

    // From `from`, past every exclusion that covers the address reached (each moves it on once,
    // so the walk ends); an address at or below `to` that none covers is in the pool.
    private static AddressNumber? FirstNotExcluded(AddressNumber from, AddressNumber to, List<AddressRange> exclusions)
    {
        var at = from;
        for (bool moved = true; moved;)
        {
            moved = false;
            foreach (var e in exclusions)
            {
                if (e.FirstNumber > at || e.LastNumber < at) continue;
                if (e.LastNumber >= to) return null;
                at = e.LastNumber + 1;
                moved = true;
            }
        }
        return at;
    }

    private static AddressRange V4(uint network, int prefix) =>
        new(AddressFamily.InterNetwork, new AddressNumber(0, network), new AddressNumber(0, network | (0xFFFF_FFFFu >> prefix)));
}
