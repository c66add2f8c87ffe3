using System.Net;
using System.Net.Sockets;
using SockShim.Stack.Addressing;

namespace SockShim.Stack.Configuration;

/// <summary>The addresses of a static pool: its ranges less its exclusions, numbered 0..Count-1
/// so that a slot of the shared lease table stands for exactly one address.</summary>
public sealed class PoolDefinition
{
    private readonly AddressRange[] _segments;
    private readonly AddressNumber[] _startIndex; // index of each segment's first address
    // Distance between consecutive addresses of a segment, as a power of two: 2^0, or 2^24 for
    // one solicited-node group.
    private readonly int _stepBits;

    /// <summary>The distance between the addresses of a pool that keeps them in one solicited-node
    /// group, in bits: the group is made of an address's low 24 bits (RFC 4291 2.7.1).</summary>
    internal const int SolicitedNodeStepBits = 24;

    public string Name { get; }
    public AddressFamily Family { get; }
    public AllocationStrategy Strategy { get; }
    public IReadOnlyList<AddressRange> Ranges { get; }
    public IReadOnlyList<AddressRange> Exclusions { get; }

    /// <summary>Usable addresses, capped at the table size the pool was given: an IPv6 /64
    /// has 2^64 addresses, far more than any host holds sockets for.</summary>
    public int Count { get; }

    /// <summary>Identifies the exact address set, so processes that disagree about a pool
    /// with the same name never share one table.</summary>
    public string Fingerprint { get; }

    public PoolDefinition(string name, IReadOnlyList<AddressRange> ranges, IReadOnlyList<AddressRange> exclusions,
        AllocationStrategy strategy, int maxAddresses)
    {
        if (ranges.Count == 0) throw new ArgumentException("a pool needs at least one range", nameof(ranges));
        Name = name;
        Family = ranges[0].Family;
        Strategy = strategy;
        Ranges = ranges;
        Exclusions = exclusions;
        _segments = Subtract(Merge(ranges), Merge(exclusions));
        if (strategy == AllocationStrategy.OneSolicitedNodeGroup && Family == AddressFamily.InterNetworkV6 && _segments.Length > 0)
        {
            _stepBits = SolicitedNodeStepBits;
            _segments = OneGroup(_segments, _segments[0].FirstNumber.LowBits(_stepBits), _stepBits);
        }
        _startIndex = new AddressNumber[_segments.Length];
        var total = AddressNumber.Zero;
        for (int i = 0; i < _segments.Length; i++)
        {
            _startIndex[i] = total;
            total += ((_segments[i].LastNumber - _segments[i].FirstNumber) >> _stepBits) + 1;
        }
        Count = total.ToInt(maxAddresses);
        if (Family == AddressFamily.InterNetwork)
        {
            _v4First = new uint[_segments.Length];
            _v4Start = new int[_segments.Length];
            for (int i = 0; i < _segments.Length; i++)
                (_v4First[i], _v4Start[i]) = ((uint)_segments[i].FirstNumber.Low, _startIndex[i].ToInt(int.MaxValue));
        }
        MaxAddresses = maxAddresses;
        _total = total;
        Fingerprint = Fnv1a.Hash64($"{Family}|{string.Join(',', _segments)}|{Count}{(_stepBits == 0 ? "" : $"|step {AddressNumber.One << _stepBits}")}").ToString("x16");
    }

    /// <summary>The table size the pool was given.</summary>
    public int MaxAddresses { get; }

    /// <summary>Addresses left after exclusions, before the table-size cap.</summary>
    public UInt128 TotalAddresses => _total.ToUInt128();
    private readonly AddressNumber _total;

    public IPAddress AddressAt(int index)
    {
        if ((uint)index >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(index));
        return _v4First is not null ? AddressAtV4(index) : AddressAtWide(index);
    }

    // An IPv4 pool's segments again in 32 bits: every socket's address is looked up here.
    private readonly uint[]? _v4First;
    private readonly int[]? _v4Start;

    private IPAddress AddressAtV4(int index)
    {
        int seg = _v4Start!.Length - 1;
        int lo = 0;
        while (lo < seg)
        {
            int mid = (lo + seg + 1) / 2;
            if (_v4Start[mid] <= index) lo = mid; else seg = mid - 1;
        }
        uint n = _v4First![lo] + (uint)(index - _v4Start[lo]);
        // IPAddress(long) takes the address as it lies in memory in network order.
        return new IPAddress(BitConverter.IsLittleEndian ? System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(n) : n);
    }

    private IPAddress AddressAtWide(int index)
    {
        // The last segment starting at or before the index.
        var at = new AddressNumber(0, (ulong)index);
        int lo = 0, hi = _startIndex.Length - 1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) / 2;
            if (_startIndex[mid] <= at) lo = mid; else hi = mid - 1;
        }
        return (_segments[lo].FirstNumber + ((at - _startIndex[lo]) << _stepBits)).ToAddress(Family);
    }

    /// <summary>The slot index of an address of this pool, or -1.</summary>
    public int IndexOf(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        if (address.AddressFamily != Family) return -1;
        var n = AddressNumber.Of(address);
        for (int i = 0; i < _segments.Length; i++)
        {
            var offset = n - _segments[i].FirstNumber;
            if (n >= _segments[i].FirstNumber && n <= _segments[i].LastNumber && offset.LowBits(_stepBits) == AddressNumber.Zero)
            {
                var index = _startIndex[i] + (offset >> _stepBits);
                return index < new AddressNumber(0, (ulong)Count) ? (int)index.Low : -1;
            }
        }
        return -1;
    }

    public bool Contains(IPAddress address) => IndexOf(address) >= 0;

    public override string ToString() =>
        $"{Name} ({AddressMath.FamilyName(Family)} {string.Join(", ", Ranges)}" +
        (Exclusions.Count > 0 ? $" except {string.Join(", ", Exclusions)}" : "") + $", {Count} addresses)";

    // Each segment cut down to its addresses whose low bits are `low`, from the first such
    // address to the last (a segment holding none is dropped).
    private static AddressRange[] OneGroup(AddressRange[] segments, AddressNumber low, int stepBits)
    {
        var step = AddressNumber.One << stepBits;
        var result = new List<AddressRange>();
        foreach (var r in segments)
        {
            var first = (r.FirstNumber - r.FirstNumber.LowBits(stepBits)) | low;
            if (first < r.FirstNumber)
            {
                if (first > AddressNumber.MaxValue - step) continue;
                first += step;
            }
            if (first > r.LastNumber) continue;
            result.Add(r with { FirstNumber = first, LastNumber = first + (((r.LastNumber - first) >> stepBits) << stepBits) });
        }
        return result.ToArray();
    }

    private static List<AddressRange> Merge(IReadOnlyList<AddressRange> ranges)
    {
        var sorted = new List<AddressRange>(ranges);
        sorted.Sort((a, b) => a.FirstNumber.CompareTo(b.FirstNumber));
        var merged = new List<AddressRange>();
        foreach (var r in sorted)
        {
            if (merged.Count > 0 && merged[^1].LastNumber != AddressNumber.MaxValue && r.FirstNumber <= merged[^1].LastNumber + 1)
            {
                var last = merged[^1];
                merged[^1] = last with { LastNumber = AddressNumber.Max(last.LastNumber, r.LastNumber) };
            }
            else merged.Add(r);
        }
        return merged;
    }

    private static AddressRange[] Subtract(List<AddressRange> ranges, List<AddressRange> holes)
    {
        var result = new List<AddressRange>();
        foreach (var r in ranges)
        {
            var start = r.FirstNumber;
            bool done = false;
            foreach (var h in holes)
            {
                if (h.Family != r.Family || h.LastNumber < start || h.FirstNumber > r.LastNumber) continue;
                if (h.FirstNumber > start) result.Add(r with { FirstNumber = start, LastNumber = h.FirstNumber - 1 });
                if (h.LastNumber >= r.LastNumber) { done = true; break; }
                start = h.LastNumber + 1;
            }
            if (!done) result.Add(r with { FirstNumber = start });
        }
        return result.ToArray();
    }
}
