using System.Net;
using System.Net.Sockets;
using SockShim.Stack.Addressing;
using SockShim.Stack.Configuration;
using SockShim.Stack.Policy;
using SockShim.Stack.Pools;

namespace SockShim.Tests.Stack;

public class AddressRangeTests
{
    [TestCase("127.100.0.0/16", "127.100.0.0", "127.100.255.255", 65536)]
    [TestCase("127.100.0.10-127.100.0.19", "127.100.0.10", "127.100.0.19", 10)]
    [TestCase("127.0.0.9", "127.0.0.9", "127.0.0.9", 1)]
    [TestCase("2001:db8:1::/120", "2001:db8:1::", "2001:db8:1::ff", 256)]
    [TestCase("2001:db8::5-2001:db8::7", "2001:db8::5", "2001:db8::7", 3)]
    public void Parses_cidrs_ranges_and_single_addresses(string text, string first, string last, int count)
    {
        Assert.That(AddressRange.TryParse(text, out var r, out var error), Is.True, error);
        Assert.That(r!.FirstAddress, Is.EqualTo(IPAddress.Parse(first)));
        Assert.That(r.LastAddress, Is.EqualTo(IPAddress.Parse(last)));
        Assert.That(r.Count, Is.EqualTo((UInt128)count));
    }

    [TestCase("127.100.0.0/33", "prefix length")]
    [TestCase("127.100.0.0/024", "prefix length")] // int.Parse read 24
    [TestCase("127.100.0.0/+24", "prefix length")]
    [TestCase("127.100.0.0/ 24", "prefix length")]
    [TestCase("127.100.0.0/", "prefix length")]
    [TestCase("2001:db8::/0120", "prefix length")]
    [TestCase("127.100.0.300/24", "not an IP address")]
    [TestCase("127.100.1.0/16", "host bits")]
    [TestCase("127.100.0.9-127.100.0.1", "empty")]
    [TestCase("127.100.0.1-2001:db8::1", "mixes")]
    [TestCase("127.1/16", "not an IP address")]
    [TestCase("127.100.0.010", "not an IP address")] // IPAddress.Parse reads octal: .8
    [TestCase("0x7f.100.0.1", "not an IP address")]
    [TestCase("127.100.0.256", "not an IP address")]
    [TestCase("127.100.0.1.", "not an IP address")]
    [TestCase("127.100..1", "not an IP address")]
    [TestCase("127.100.0.1 7", "not an IP address")]
    [TestCase("+127.100.0.1", "not an IP address")]
    [TestCase("127.100.0.0001", "not an IP address")]
    [TestCase("127.100.0.4294967297", "not an IP address")] // wraps to .1 without the three-digit limit
    [TestCase("::ffff:127.100.0.010", "not an IP address")] // a quad inside IPv6 text keeps the quad's rules
    [TestCase("::ffff:127.100.0.08", "not an IP address")]
    [TestCase("fe80::1%2", "not an IP address")]
    [TestCase("", "empty")]
    public void Rejects_malformed_text_saying_why(string text, string why)
    {
        Assert.That(AddressRange.TryParse(text, out _, out var error), Is.False);
        Assert.That(error, Does.Contain(why));
    }

    [Test]
    public void A_dotted_quad_reads_as_ip_address_parse_reads_it()
    {
        // Read by SockShim itself (IPAddress.TryParse's first call costs milliseconds): every
        // canonical quad must come out as the runtime's own parser gives it.
        var random = new Random(20261206);
        var quads = new List<string> { "0.0.0.0", "255.255.255.255", "127.0.0.1", "10.0.0.0", "192.0.2.9", "100.20.3.40" };
        for (int i = 0; i < 2000; i++) quads.Add($"{random.Next(256)}.{random.Next(256)}.{random.Next(256)}.{random.Next(256)}");
        foreach (var quad in quads)
        {
            Assert.That(AddressRange.TryParse($" {quad} ", out var range, out var error), Is.True, $"{quad}: {error}");
            Assert.That(range!.FirstAddress, Is.EqualTo(IPAddress.Parse(quad)), quad);
            Assert.That(range.Family, Is.EqualTo(AddressFamily.InterNetwork));
        }
        Assert.That(AddressRange.TryParse("::ffff:192.0.2.9", out var mapped, out _), Is.True);
        Assert.That(mapped!.FirstAddress, Is.EqualTo(IPAddress.Parse("192.0.2.9")), "an IPv4-mapped address is its IPv4 address");
    }

    [Test]
    public void A_pool_subtracts_exclusions_and_numbers_what_is_left()
    {
        var pool = Definition("127.100.0.0/29", exclude: ["127.100.0.0", "127.100.0.3-127.100.0.4"]);
        Assert.That(pool.Count, Is.EqualTo(5));
        var all = Enumerable.Range(0, pool.Count).Select(pool.AddressAt).Select(a => a.ToString()).ToList();
        Assert.That(all, Is.EqualTo(new[] { "127.100.0.1", "127.100.0.2", "127.100.0.5", "127.100.0.6", "127.100.0.7" }));
        Assert.That(pool.IndexOf(IPAddress.Parse("127.100.0.5")), Is.EqualTo(2));
        Assert.That(pool.IndexOf(IPAddress.Parse("127.100.0.3")), Is.EqualTo(-1));
    }

    [Test]
    public void An_ipv6_pool_is_capped_at_its_table_size_and_indexes_both_ways()
    {
        var pool = Definition("2001:db8:1::/64", exclude: ["2001:db8:1::"], max: 4096);
        Assert.That(pool.Family, Is.EqualTo(AddressFamily.InterNetworkV6));
        Assert.That(pool.Count, Is.EqualTo(4096));
        Assert.That(pool.TotalAddresses, Is.EqualTo(((UInt128)1 << 64) - 1));
        Assert.That(pool.AddressAt(0), Is.EqualTo(IPAddress.Parse("2001:db8:1::1")));
        Assert.That(pool.AddressAt(4095), Is.EqualTo(IPAddress.Parse("2001:db8:1::1000")));
        Assert.That(pool.IndexOf(IPAddress.Parse("2001:db8:1::1000")), Is.EqualTo(4095));
        Assert.That(pool.IndexOf(IPAddress.Parse("2001:db8:1::1001")), Is.EqualTo(-1), "beyond the table");
    }

    [Test]
    public void Overlapping_ranges_count_once_and_change_the_fingerprint_only_when_the_set_changes()
    {
        var a = Definition("127.100.0.0/30,127.100.0.2-127.100.0.5");
        var b = Definition("127.100.0.0-127.100.0.5");
        var c = Definition("127.100.0.0-127.100.0.6");
        Assert.That(a.Count, Is.EqualTo(6));
        Assert.That(a.Fingerprint, Is.EqualTo(b.Fingerprint));
        Assert.That(c.Fingerprint, Is.Not.EqualTo(b.Fingerprint));
    }

    internal static PoolDefinition Definition(string ranges, string[]? exclude = null, int max = 1 << 20, AllocationStrategy strategy = AllocationStrategy.Sequential)
    {
        AddressRange Parse(string t) => AddressRange.TryParse(t, out var r, out var e) ? r : throw new ArgumentException(e);
        return new PoolDefinition("t", ranges.Split(',').Select(Parse).ToList(), (exclude ?? []).Select(Parse).ToList(), strategy, max);
    }
}
