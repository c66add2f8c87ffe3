using System.Net;
using System.Net.Sockets;
using SockShim.Stack.Addressing;

namespace SockShim.Stack.Configuration;

/// <summary>The addresses of a static pool: its ranges less its exclusions, numbered 0..Count-1
/// so that a slot of the shared lease table stands for exactly one address.</summary>
public sealed class PoolDefinition
{
    private readonly AddressRange[] _segments;
    private readonly UInt128[] _startIndex; // index of each segment's first address
    // Distance between consecutive addresses of a segment: 1, or 2^24 for one solicited-node group.
    private readonly UInt128 _step = 1;

    /// <summary>The distance between the addresses of a pool that keeps them in one solicited-node
    /// group: the group is made of an address's low 24 bits (RFC 4291 2.7.1).</summary>
    internal static readonly UInt128 SolicitedNodeStep = (UInt128)1 << 24;

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
            _step = SolicitedNodeStep;
            _segments = OneGroup(_segments, _segments[0].First % _step, _step);
        }
        _startIndex = new UInt128[_segments.Length];
        UInt128 total = 0;
        for (int i = 0; i < _segments.Length; i++)
        {
            _startIndex[i] = total;
            total += (_segments[i].Last - _segments[i].First) / _step + 1;
        }
        Count = (int)UInt128.Min(total, (UInt128)maxAddresses);
        if (Family == AddressFamily.InterNetwork)
        {
            _v4First = new uint[_segments.Length];
            _v4Start = new int[_segments.Length];
            for (int i = 0; i < _segments.Length; i++)
                (_v4First[i], _v4Start[i]) = ((uint)_segments[i].First, (int)UInt128.Min(_startIndex[i], (UInt128)int.MaxValue));
        }
        MaxAddresses = maxAddresses;
        TotalAddresses = total;
        Fingerprint = Fnv1a.Hash64($"{Family}|{string.Join(',', _segments)}|{Count}{(_step == 1 ? "" : $"|step {_step}")}").ToString("x16");
    }

    /// <summary>The table size the pool was given.</summary>
    public int MaxAddresses { get; }

    /// <summary>Addresses left after exclusions, before the table-size cap.</summary>
    public UInt128 TotalAddresses { get; }

    public IPAddress AddressAt(int index)
    {
        if ((uint)index >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(index));
        return _v4First is not null ? AddressAtV4(index) : AddressAtWide(index);
    }

    // An IPv4 pool's segments again in 32 bits: every socket's address is looked up here, and a
    // method that touches UInt128 is compiled at run time (ReadyToRun leaves it out), so in a
    // fresh process each lookup ran unoptimised code until the JIT tiered it up.
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
        // The last segment starting at or before the index, searched by hand: Array.BinarySearch
        // over UInt128 is compiled at run time, in every app's first socket.
        int lo = 0, hi = _startIndex.Length - 1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) / 2;
            if (_startIndex[mid] <= (UInt128)index) lo = mid; else hi = mid - 1;
        }
        int seg = lo;
        return AddressMath.FromNumber(_segments[seg].First + ((UInt128)index - _startIndex[seg]) * _step, Family);
    }

    /// <summary>The slot index of an address of this pool, or -1.</summary>
    public int IndexOf(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        if (address.AddressFamily != Family) return -1;
        var n = AddressMath.ToNumber(address);
        for (int i = 0; i < _segments.Length; i++)
        {
            if (n >= _segments[i].First && n <= _segments[i].Last && (n - _segments[i].First) % _step == 0)
            {
                var index = _startIndex[i] + (n - _segments[i].First) / _step;
                return index < (UInt128)Count ? (int)index : -1;
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
    private static AddressRange[] OneGroup(AddressRange[] segments, UInt128 low, UInt128 step)
    {
        var result = new List<AddressRange>();
        foreach (var r in segments)
        {
            UInt128 first = r.First - r.First % step + low;
            if (first < r.First)
            {
                if (first > UInt128.MaxValue - step) continue;
                first += step;
            }
            if (first > r.Last) continue;
            result.Add(r with { First = first, Last = first + (r.Last - first) / step * step });
        }
        return result.ToArray();
    }

    private static List<AddressRange> Merge(IReadOnlyList<AddressRange> ranges)
    {
        var sorted = new List<AddressRange>(ranges);
        sorted.Sort((a, b) => a.First.CompareTo(b.First));
        var merged = new List<AddressRange>();
        foreach (var r in sorted)
        {
            if (merged.Count > 0 && merged[^1].Last != UInt128.MaxValue && r.First <= merged[^1].Last + 1)
            {
                var last = merged[^1];
                merged[^1] = last with { Last = UInt128.Max(last.Last, r.Last) };
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
            UInt128 start = r.First;
            bool done = false;
            foreach (var h in holes)
            {
                if (h.Family != r.Family || h.Last < start || h.First > r.Last) continue;
                if (h.First > start) result.Add(r with { First = start, Last = h.First - 1 });
                if (h.Last >= r.Last) { done = true; break; }
                start = h.Last + 1;
            }
            if (!done) result.Add(r with { First = start });
        }
        return result.ToArray();
    }
}
