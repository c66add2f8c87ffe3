using System.Net;
using System.Net.Sockets;
using SockShim.Stack.Addressing;

namespace SockShim.Tests.Stack;

/// <summary>AddressNumber stands in for UInt128 (which ReadyToRun leaves out): every operation
/// is checked against UInt128's own answer, on the values where carries and shifts go wrong.</summary>
public class AddressNumberTests
{
    private static readonly UInt128[] Edges =
    [
        0, 1, 2, 0xFF, 0x7FFF_FFFF, 0xFFFF_FFFF, 0x1_0000_0000, ulong.MaxValue - 1, ulong.MaxValue,
        (UInt128)ulong.MaxValue + 1, (UInt128)ulong.MaxValue + 2, UInt128.One << 100, (UInt128.One << 127) - 1,
        UInt128.One << 127, UInt128.MaxValue - 1, UInt128.MaxValue, new(0x2001_0db8_0000_0000, 0x0000_0000_00ff_ffff),
    ];

    private static IEnumerable<UInt128> Values()
    {
        var random = new Random(20261206);
        Span<byte> bytes = stackalloc byte[16];
        var values = new List<UInt128>(Edges);
        for (int i = 0; i < 40; i++)
        {
            random.NextBytes(bytes);
            values.Add(System.Buffers.Binary.BinaryPrimitives.ReadUInt128LittleEndian(bytes) >> random.Next(0, 128));
        }
        return values;
    }

    private static AddressNumber N(UInt128 v) => AddressNumber.FromUInt128(v);

    [Test]
    public void Arithmetic_bitwise_and_comparison_agree_with_uint128()
    {
        var values = Values().ToList();
        foreach (var a in values)
        {
            Assert.That(N(a).ToUInt128(), Is.EqualTo(a));
            Assert.That((~N(a)).ToUInt128(), Is.EqualTo(~a), $"~{a}");
            Assert.That(N(a).ToString(), Is.EqualTo(a.ToString()));
            Assert.That(N(a).IsPow2, Is.EqualTo(UInt128.IsPow2(a)), $"IsPow2 {a}");
            Assert.That(N(a).Log2, Is.EqualTo((int)UInt128.Log2(a)), $"Log2 {a}");
            Assert.That(N(a).ToInt(65536), Is.EqualTo((int)UInt128.Min(a, 65536)), $"ToInt {a}");
            for (int bits = 0; bits <= 128; bits++)
            {
                UInt128 expectedLeft = bits == 128 ? 0 : a << bits, expectedRight = bits == 128 ? 0 : a >> bits;
                Assert.That((N(a) << bits).ToUInt128(), Is.EqualTo(expectedLeft), $"{a} << {bits}");
                Assert.That((N(a) >> bits).ToUInt128(), Is.EqualTo(expectedRight), $"{a} >> {bits}");
                UInt128 low = bits == 128 ? a : a & ((UInt128.One << bits) - 1);
                Assert.That(N(a).LowBits(bits).ToUInt128(), Is.EqualTo(low), $"{a} low {bits} bits");
            }
            foreach (var b in values)
            {
                Assert.That((N(a) + N(b)).ToUInt128(), Is.EqualTo(a + b), $"{a} + {b}");
                Assert.That((N(a) - N(b)).ToUInt128(), Is.EqualTo(a - b), $"{a} - {b}");
                Assert.That((N(a) & N(b)).ToUInt128(), Is.EqualTo(a & b), $"{a} & {b}");
                Assert.That((N(a) | N(b)).ToUInt128(), Is.EqualTo(a | b), $"{a} | {b}");
                Assert.That(N(a).CompareTo(N(b)), Is.EqualTo(a.CompareTo(b)), $"{a} compared with {b}");
                Assert.That(N(a) == N(b), Is.EqualTo(a == b));
                Assert.That(N(a) != N(b), Is.EqualTo(a != b));
                Assert.That(N(a) < N(b), Is.EqualTo(a < b));
                Assert.That(N(a) <= N(b), Is.EqualTo(a <= b), $"{a} <= {b}");
                Assert.That(N(a) > N(b), Is.EqualTo(a > b), $"{a} > {b}");
                Assert.That(N(a) >= N(b), Is.EqualTo(a >= b), $"{a} >= {b}");
                Assert.That(AddressNumber.Max(N(a), N(b)).ToUInt128(), Is.EqualTo(UInt128.Max(a, b)));
                Assert.That(AddressNumber.Min(N(a), N(b)).ToUInt128(), Is.EqualTo(UInt128.Min(a, b)));
                Assert.That((N(a) + (ulong)b).ToUInt128(), Is.EqualTo(a + (ulong)b), $"{a} + (ulong){b}");
                Assert.That((N(a) - (ulong)b).ToUInt128(), Is.EqualTo(a - (ulong)b), $"{a} - (ulong){b}");
            }
        }
    }

    [TestCase("0.0.0.0", 0UL, 0UL)]
    [TestCase("127.100.0.1", 0UL, 0x7F64_0001UL)]
    [TestCase("255.255.255.255", 0UL, 0xFFFF_FFFFUL)]
    [TestCase("::", 0UL, 0UL)]
    [TestCase("2001:db8::ffff:1", 0x2001_0db8_0000_0000UL, 0x0000_0000_ffff_0001UL)]
    [TestCase("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 0x2001_0db8_ffff_ffffUL, ulong.MaxValue)]
    [TestCase("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ulong.MaxValue, ulong.MaxValue)]
    public void An_address_and_its_number_make_the_round_trip_in_network_order(string text, ulong high, ulong low)
    {
        var address = IPAddress.Parse(text);
        var n = AddressNumber.Of(address);
        Assert.That((n.High, n.Low), Is.EqualTo((high, low)));
        Assert.That(n.ToAddress(address.AddressFamily), Is.EqualTo(address));
    }

    [TestCase("::/0", "::/0", 0)] // 2^128 addresses: the count wraps to 0
    [TestCase("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::/0", 0)]
    [TestCase("2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8::/32", 32)]
    [TestCase("0.0.0.0/0", "0.0.0.0/0", 0)]
    [TestCase("2001:db8::/32", "2001:db8::/32", 32)]
    [TestCase("127.100.0.4-127.100.0.7", "127.100.0.4/30", 30)]
    [TestCase("127.100.0.5-127.100.0.8", "127.100.0.5-127.100.0.8", null)]
    [TestCase("127.100.0.9/32", "127.100.0.9", 32)] // one address is written bare, and is a /32
    [TestCase("2001:db8::9", "2001:db8::9", 128)]
    public void A_range_is_written_as_a_prefix_exactly_when_it_is_one(string text, string written, int? prefixLength)
    {
        Assert.That(AddressRange.TryParse(text, out var range, out var error), Is.True, error);
        Assert.That(range!.ToString(), Is.EqualTo(written));
        // The prefix length the AnyIP route is added with (RouteNetlink.AddLocalRoute).
        Assert.That(range.PrefixLength, Is.EqualTo(prefixLength));
        Assert.That(range.Family, Is.EqualTo(text.Contains(':') ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork));
    }
}
