using System.Net;
using SockShim.Stack.Addressing;
using SockShim.Stack.Claims;
using SockShim.Stack.Configuration;
using SockShim.Stack.Policy;
using SockShim.Stack.Pools;

namespace SockShim.Tests.Stack;

public class AllocationStrategyTests
{
    [Test]
    public void Sequential_hands_out_the_lowest_free_address()
    {
        using var t = new TestStack("127.101.1.0/29", AllocationStrategy.Sequential);
        var a = Take(t, 3);
        // A /29's network address (.0) is not handed out.
        Assert.That(a.Select(l => l.Address.ToString()), Is.EqualTo(new[] { "127.101.1.1", "127.101.1.2", "127.101.1.3" }));
        a[1].Release();
        Assert.That(Take(t, 1)[0].Address, Is.EqualTo(IPAddress.Parse("127.101.1.2")));
    }

    /// <summary>A CIDR longer than two addresses keeps its network and broadcast addresses (IPv4)
    /// or its subnet-router anycast address (IPv6) out of the pool, unless another item lists them.</summary>
    [TestCase("192.0.2.0/29", "192.0.2.1,192.0.2.2,192.0.2.3,192.0.2.4,192.0.2.5,192.0.2.6")]
    [TestCase("192.0.2.0/29,192.0.2.0", "192.0.2.0,192.0.2.1,192.0.2.2,192.0.2.3,192.0.2.4,192.0.2.5,192.0.2.6")]
    [TestCase("192.0.2.0/31", "192.0.2.0,192.0.2.1")]
    [TestCase("2001:db8:9::/126", "2001:db8:9::1,2001:db8:9::2,2001:db8:9::3")]
    public void A_prefix_hands_out_only_its_host_addresses(string ranges, string expected)
    {
        var spec = (LocalPoolSpec)SettingsLoader.Load(new Dictionary<string, string?> { ["Pool"] = ranges, ["Provisioner"] = "netlink", ["Interface"] = "lo", ["Strategy"] = "sequential" },
            new Dictionary<string, string>()).Pools[0];
        string dir = Path.Combine("/dev/shm", "sockshim-test-prefix-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        var provisioner = new RecordingProvisioner();
        try
        {
            using var pool = TestPools.Static(spec.Addresses, provisioner, LeaseTable.Open(Path.Combine(dir, "p.leases"), spec.Addresses.Count));
            var handed = new List<string>();
            for (int i = 0; i < 16 && pool.TryAcquire("prefix", out var lease, out _); i++) handed.Add(lease.Address.ToString());
            Assert.That(handed, Is.EquivalentTo(expected.Split(',')), "every address the pool handed out before it was exhausted");
            Assert.That(provisioner.OnHost().Select(a => a.ToString()), Is.EquivalentTo(expected.Split(',')), "what was put on the host");
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>one-group: a pool hands out only the addresses that share the low 24 bits of its
    /// first one (one solicited-node group), every one of them, and nothing else; an address maps
    /// back to its slot.</summary>
    [Test]
    public void One_group_hands_out_exactly_the_addresses_of_one_solicited_node_group()
    {
        // A /100 holds 2^28 addresses, 16 of them with the low 24 bits of ::1 (its ::0 is reserved).
        var spec = (LocalPoolSpec)SettingsLoader.Load(new Dictionary<string, string?> { ["Pool"] = "2001:db8:9::/100", ["Provisioner"] = "netlink", ["Interface"] = "lo", ["Strategy"] = "one-group" },
            new Dictionary<string, string>()).Pools[0];
        var expected = Enumerable.Range(0, 16).Select(i => $"2001:db8:9::{(i == 0 ? "" : $"{i:x}00:")}1").ToList();
        Assert.That(spec.Addresses.Count, Is.EqualTo(16));
        string dir = Path.Combine("/dev/shm", "sockshim-test-onegroup-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        var provisioner = new RecordingProvisioner();
        try
        {
            using var pool = TestPools.Static(spec.Addresses, provisioner, LeaseTable.Open(Path.Combine(dir, "p.leases"), spec.Addresses.Count));
            var handed = new List<string>();
            for (int i = 0; i < 40 && pool.TryAcquire("one-group", out var lease, out _); i++) handed.Add(lease.Address.ToString());
            Assert.That(handed, Is.EquivalentTo(expected), "every address the pool handed out before it was exhausted");
            Assert.That(handed.Select(a => IPAddress.Parse(a).GetAddressBytes()[13..]), Is.All.EqualTo(new byte[] { 0, 0, 1 }), "all with the low 24 bits of ::1");
        }
        finally { Directory.Delete(dir, true); }
        for (int slot = 0; slot < 16; slot++) Assert.That(spec.Addresses.IndexOf(spec.Addresses.AddressAt(slot)), Is.EqualTo(slot));
        Assert.That(spec.Addresses.IndexOf(IPAddress.Parse("2001:db8:9::2")), Is.EqualTo(-1), "an address of the prefix outside the group is not the pool's");
    }

    [Test]
    public void Least_recently_released_does_not_reissue_a_just_released_address_while_others_are_free()
    {
        using var t = new TestStack("127.101.2.0-127.101.2.7", AllocationStrategy.LeastRecentlyReleased);
        var held = Take(t, 8);
        // Release in the order 5, 2, 7: then 5 is the least recently released.
        foreach (int i in new[] { 5, 2, 7 }) held[i].Release();
        var next = Take(t, 3).Select(l => l.Address.ToString()).ToList();
        Assert.That(next, Is.EqualTo(new[] { "127.101.2.5", "127.101.2.2", "127.101.2.7" }));

        // With never-used addresses free, a released one waits its turn behind them.
        using var big = new TestStack("127.101.3.0/24", AllocationStrategy.LeastRecentlyReleased);
        var first = Take(big, 1)[0];
        var released = first.Address;
        first.Release();
        var after = Take(big, 200).Select(l => l.Address).ToList();
        Assert.That(after, Does.Not.Contain(released));
    }

    [Test]
    public void Random_spreads_over_the_pool_and_never_repeats_a_live_address()
    {
        using var t = new TestStack("127.101.4.0/24", AllocationStrategy.Random);
        var leases = Take(t, 100);
        Assert.That(leases.Select(l => l.Address).Distinct().Count(), Is.EqualTo(100));
        // Sequential would give .0-.99; random almost surely reaches past .128.
        Assert.That(leases.Max(l => l.Address.GetAddressBytes()[3]), Is.GreaterThan(128));
    }

    [Test]
    public void A_lease_is_released_exactly_once()
    {
        using var t = new TestStack("127.101.5.0/30");
        var lease = Take(t, 1)[0];
        Assert.That(lease.Release(), Is.True);
        Assert.That(lease.Release(), Is.False);
        Assert.That(t.HeldSlots(), Is.Zero);
        Assert.That(lease.Reason, Is.EqualTo("test"));
        Assert.That(lease.PoolName, Is.EqualTo("test"));
    }

    private static List<Lease> Take(TestStack t, int n)
    {
        var list = new List<Lease>();
        for (int i = 0; i < n; i++)
        {
            Assert.That(t.Pool.TryAcquire("test", out var lease, out var error), Is.True, error?.Message);
            list.Add(lease);
        }
        return list;
    }
}

public class Ipv6PoolTests
{
    [TestCase(AllocationStrategy.Sequential)]
    [TestCase(AllocationStrategy.Random)]
    [TestCase(AllocationStrategy.LeastRecentlyReleased)]
    public void An_ipv6_pool_hands_out_distinct_addresses_of_its_prefix_and_takes_them_back(AllocationStrategy strategy)
    {
        var definition = AddressRangeTests.Definition("2001:db8:7::/64", exclude: ["2001:db8:7::"], max: 1024, strategy: strategy);
        string dir = Path.Combine("/dev/shm", "sockshim-test-v6-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        var provisioner = new RecordingProvisioner();
        try
        {
            using var pool = TestPools.Static(definition, provisioner, LeaseTable.Open(Path.Combine(dir, "v6.leases"), definition.Count));
            var leases = new List<Lease>();
            for (int i = 0; i < 1024; i++)
            {
                Assert.That(pool.TryAcquire("v6", out var lease, out var error), Is.True, error?.Message);
                leases.Add(lease);
            }
            Assert.That(leases.Select(l => l.Address).Distinct().Count(), Is.EqualTo(1024));
            Assert.That(leases.All(l => l.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 && l.Address.ToString().StartsWith("2001:db8:7::")), Is.True);
            Assert.That(provisioner.OnHost(), Has.Count.EqualTo(1024));
            Assert.That(pool.TryAcquire("one too many", out _, out var full), Is.False);
            Assert.That(full!.Code, Is.EqualTo(SockShim.Stack.Errors.StackErrorCode.PoolExhausted));
            leases.ForEach(l => l.Release());
            Assert.That(provisioner.OnHost(), Is.Empty);
            Assert.That(provisioner.Removed, Is.EqualTo(1024), "each address deprovisioned once");
            Assert.That(pool.Table.HeldSlots(), Is.Empty);
        }
        finally { Directory.Delete(dir, true); }
    }
}
