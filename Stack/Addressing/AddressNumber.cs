using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Numerics;

namespace SockShim.Stack.Addressing;

/// <summary>An IPv4 or IPv6 address as an unsigned 128-bit number, so ranges can be counted,
/// indexed and compared.</summary>
/// <remarks>Not <see cref="UInt128"/>: crossgen2 leaves every method that touches UInt128 out of
/// ReadyToRun (CoreLib's own operators included), so each app under the launcher JIT-compiled
/// them at its first socket, while parsing its pools (that connection 43.5 -> 37.2 ms, measured). This
/// struct is two 64-bit halves and only the operations pools need; its code is precompiled with
/// the rest of Stack. UInt128 stays at the public edge (<see cref="AddressRange.First"/>).</remarks>
internal readonly struct AddressNumber : IEquatable<AddressNumber>, IComparable<AddressNumber>
{
    public readonly ulong High, Low;

    public AddressNumber(ulong high, ulong low) => (High, Low) = (high, low);

    public static readonly AddressNumber Zero = default, One = new(0, 1), MaxValue = new(ulong.MaxValue, ulong.MaxValue);

    public static AddressNumber FromUInt128(UInt128 value) => new((ulong)(value >> 64), (ulong)value);
    public UInt128 ToUInt128() => new(High, Low);

    public static AddressNumber Of(IPAddress address)
    {
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out int written);
        return written == 4
            ? new(0, BinaryPrimitives.ReadUInt32BigEndian(bytes))
            : new(BinaryPrimitives.ReadUInt64BigEndian(bytes), BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]));
    }

    public IPAddress ToAddress(AddressFamily family)
    {
        if (family == AddressFamily.InterNetwork)
        {
            Span<byte> v4 = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(v4, (uint)Low);
            return new IPAddress(v4);
        }
        Span<byte> v6 = stackalloc byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(v6, High);
        BinaryPrimitives.WriteUInt64BigEndian(v6[8..], Low);
        return new IPAddress(v6);
    }

    public static AddressNumber operator +(AddressNumber a, AddressNumber b)
    {
        ulong low = a.Low + b.Low;
        return new(a.High + b.High + (low < a.Low ? 1UL : 0), low);
    }

    public static AddressNumber operator -(AddressNumber a, AddressNumber b)
    {
        ulong low = a.Low - b.Low;
        return new(a.High - b.High - (a.Low < b.Low ? 1UL : 0), low);
    }

    public static AddressNumber operator +(AddressNumber a, ulong b) => a + new AddressNumber(0, b);
    public static AddressNumber operator -(AddressNumber a, ulong b) => a - new AddressNumber(0, b);
    public static AddressNumber operator &(AddressNumber a, AddressNumber b) => new(a.High & b.High, a.Low & b.Low);
    public static AddressNumber operator |(AddressNumber a, AddressNumber b) => new(a.High | b.High, a.Low | b.Low);
    public static AddressNumber operator ~(AddressNumber a) => new(~a.High, ~a.Low);

    public static AddressNumber operator <<(AddressNumber a, int bits) => bits switch
    {
        0 => a,
        >= 128 => Zero,
        >= 64 => new(a.Low << (bits - 64), 0),
        _ => new((a.High << bits) | (a.Low >> (64 - bits)), a.Low << bits),
    };

    public static AddressNumber operator >>(AddressNumber a, int bits) => bits switch
    {
        0 => a,
        >= 128 => Zero,
        >= 64 => new(0, a.High >> (bits - 64)),
        _ => new(a.High >> bits, (a.Low >> bits) | (a.High << (64 - bits))),
    };

    /// <summary>The number with its low <paramref name="bits"/> bits only.</summary>
    public AddressNumber LowBits(int bits) => this & ~(MaxValue << bits);

    public bool IsPow2 => (High == 0) ? BitOperations.IsPow2(Low) : Low == 0 && BitOperations.IsPow2(High);

    /// <summary>The index of the highest bit set (0 for zero), as UInt128.Log2.</summary>
    public int Log2 => High != 0 ? 64 + BitOperations.Log2(High) : BitOperations.Log2(Low);

    /// <summary>As an int, at most <paramref name="cap"/>.</summary>
    public int ToInt(int cap) => High != 0 || Low > (ulong)cap ? cap : (int)Low;

    public static AddressNumber Min(AddressNumber a, AddressNumber b) => a <= b ? a : b;
    public static AddressNumber Max(AddressNumber a, AddressNumber b) => a >= b ? a : b;

    public int CompareTo(AddressNumber other) => High != other.High ? High.CompareTo(other.High) : Low.CompareTo(other.Low);
    public bool Equals(AddressNumber other) => High == other.High && Low == other.Low;
    public override bool Equals(object? obj) => obj is AddressNumber other && Equals(other);
    public override int GetHashCode() => HashCode.Combine(High, Low);

    public static bool operator ==(AddressNumber a, AddressNumber b) => a.Equals(b);
    public static bool operator !=(AddressNumber a, AddressNumber b) => !a.Equals(b);
    public static bool operator <(AddressNumber a, AddressNumber b) => a.CompareTo(b) < 0;
    public static bool operator >(AddressNumber a, AddressNumber b) => a.CompareTo(b) > 0;
    public static bool operator <=(AddressNumber a, AddressNumber b) => a.CompareTo(b) <= 0;
    public static bool operator >=(AddressNumber a, AddressNumber b) => a.CompareTo(b) >= 0;

    /// <summary>In decimal, as UInt128 writes it (the pool fingerprint holds a number).</summary>
    public override string ToString() => High == 0 ? Low.ToString(System.Globalization.CultureInfo.InvariantCulture) : ToUInt128().ToString();
}
