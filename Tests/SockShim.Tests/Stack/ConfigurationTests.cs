using SockShim.Stack;
using SockShim.Stack.Addressing;
using SockShim.Stack.Configuration;
using SockShim.Stack.Errors;
using SockShim.Stack.Policy;
using SockShim.Stack.Pools;

namespace SockShim.Tests.Stack;

public class ConfigurationTests
{
    private static StackSpec Load(Dictionary<string, string?>? options = null, Dictionary<string, string>? env = null) =>
        SettingsLoader.Load(options, env ?? new Dictionary<string, string>());

    private static ConfigurationException Fails(Dictionary<string, string?>? options = null, Dictionary<string, string>? env = null) =>
        Assert.Throws<ConfigurationException>(() => Load(options, env))!;

    [Test]
    public void With_nothing_set_the_embedded_loopback_pool_is_used()
    {
        var s = Load();
        Assert.That(s.Pools, Has.Count.EqualTo(1));
        var pool = (StaticPoolSpec)s.Pools[0];
        Assert.That(pool.Addresses.Ranges.Select(r => r.ToString()), Is.EqualTo(new[] { "127.100.0.0/16" }));
        Assert.That(pool.Provisioner, Is.EqualTo(ProvisionerSpec.Loopback));
        Assert.That(s.Allocation, Is.EqualTo(AllocationTime.Eager));
    }

    [Test]
    public void Options_override_environment_which_overrides_the_file()
    {
        string file = Path.GetTempFileName();
        File.WriteAllText(file, """{ "allocation": "eager", "pools": [ { "name": "voice", "ranges": ["127.50.0.0/24"], "strategy": "sequential" }, { "name": "v6", "ranges": ["2001:db8:1::/120"], "family": "ipv6", "provisioner": "loopback" } ] }""");
        try
        {
            // The second pool cannot use the loopback provisioner: IPv6 has no loopback range.
            var ex = Fails(env: new() { ["SOCKSHIM_CONFIG"] = file });
            Assert.That(ex.Message, Does.Contain("2001:db8:1::/120").And.Contain("127.0.0.0/8").And.Contain(file));

            File.WriteAllText(file, """{ "allocation": "eager", "pools": [ { "name": "voice", "ranges": ["127.50.0.0/24"], "strategy": "sequential" } ] }""");
            var s = Load(options: new() { ["Strategy"] = "random" }, env: new() { ["SOCKSHIM_CONFIG"] = file, ["SOCKSHIM_ALLOCATION"] = "lazy", ["SOCKSHIM_STRATEGY"] = "lrr" });
            Assert.That(s.Pools[0].Name, Is.EqualTo("voice"));
            Assert.That(((LocalPoolSpec)s.Pools[0]).Addresses.Ranges.Select(r => r.ToString()), Is.EqualTo(new[] { "127.50.0.0/24" }));
            Assert.That(s.Allocation, Is.EqualTo(AllocationTime.Lazy), "environment over file");
            Assert.That(((LocalPoolSpec)s.Pools[0]).Addresses.Strategy, Is.EqualTo(AllocationStrategy.Random), "option over environment");
        }
        finally { File.Delete(file); }
    }

    /// <summary>One file for every host of a shared pool, each host its own part of it by name.</summary>
    [Test]
    public void A_pool_partitioned_by_host_name_gives_this_host_its_own_ranges()
    {
        string file = Path.GetTempFileName();
        string host = Environment.MachineName;
        try
        {
            File.WriteAllText(file, $$"""{ "pools": [ { "name": "shared", "rangesByHost": { "{{host.ToUpperInvariant()}}": ["127.51.0.0/29"], "other-host": ["127.51.0.8/29"] } } ] }""");
            var s = Load(env: new() { ["SOCKSHIM_CONFIG"] = file });
            Assert.That(((LocalPoolSpec)s.Pools[0]).Addresses.Ranges.Select(r => r.ToString()), Is.EqualTo(new[] { "127.51.0.0/29" }), "this host's part, its name in any case");

            File.WriteAllText(file, """{ "pools": [ { "name": "shared", "rangesByHost": { "web1": ["127.51.0.0/29"], "web2": ["127.51.0.8/29"] } } ] }""");
            var ex = Fails(env: new() { ["SOCKSHIM_CONFIG"] = file });
            Assert.That(ex.Message, Does.Contain($"this host, '{host}', has none").And.Contain("web1, web2").And.Contain(file));

            File.WriteAllText(file, $$"""{ "pools": [ { "name": "shared", "ranges": ["127.51.0.0/28"], "rangesByHost": { "{{host}}": ["127.51.0.0/29"] } } ] }""");
            Assert.That(Fails(env: new() { ["SOCKSHIM_CONFIG"] = file }).Message, Does.Contain("not both"));
        }
        finally { File.Delete(file); }
    }

    [TestCase("127.100.0.300/24", "SOCKSHIM_POOL", "not an IP address")]
    [TestCase("127.100.0.0/40", "SOCKSHIM_POOL", "prefix length")]
    [TestCase("127.100.0.9-127.100.0.1", "SOCKSHIM_POOL", "range is empty")]
    [TestCase("127.100.0.0/24,2001:db8::/120", "SOCKSHIM_POOL", "IPv6 range")]
    [TestCase("10.0.0.0/24", "SOCKSHIM_POOL", "outside")]
    public void A_bad_pool_names_the_variable_the_value_and_a_good_example(string value, string variable, string why)
    {
        var ex = Fails(env: new() { [variable] = value });
        Assert.That(ex.Message, Does.Contain($"environment variable {variable}"));
        Assert.That(ex.Message, Does.Contain(why));
        Assert.That(ex.Message, Does.Contain("Example of a good value"));
    }

    /// <summary>Addresses no socket can have as its own source are refused in a pool, unless its
    /// exclusions take every one of them out.</summary>
    [TestCase("224.0.0.0/24", "", "holds multicast addresses (224.0.0.0/4), from 224.0.0.1")] // .0 is the prefix's own
    [TestCase("0.0.0.0/0", "", "holds 'this network' addresses (0.0.0.0/8), never a host's own, from 0.0.0.1")] // .0 is the prefix's own
    [TestCase("255.255.255.255", "", "holds reserved addresses (240.0.0.0/4, with the broadcast address 255.255.255.255), from 255.255.255.255")]
    [TestCase("198.51.100.0-224.0.0.9", "224.0.0.0-224.0.0.4", "holds multicast addresses (224.0.0.0/4), from 224.0.0.5")]
    [TestCase("::/0", "", "holds multicast addresses (ff00::/8), from ff00::")] // :: is the prefix's own (subnet-router anycast)
    [TestCase("::-::5", "", "holds the unspecified address (::), from ::")]
    [TestCase("ff02::/120", "", "holds multicast addresses (ff00::/8), from ff02::")]
    [TestCase("::ffff:224.0.0.0-::ffff:224.0.0.5", "", "holds multicast addresses (224.0.0.0/4), from 224.0.0.0")] // IPv4-mapped text is read as IPv4
    public void A_pool_holding_addresses_that_are_never_a_sockets_own_is_refused(string pool, string exclude, string why)
    {
        var options = new Dictionary<string, string?> { ["Pool"] = pool, ["Provisioner"] = "anyip" };
        if (exclude != "") options["Exclude"] = exclude;
        var ex = Fails(options: options);
        Assert.That(ex.Message, Does.Contain("range ").And.Contain(why).And.Contain("a socket's own address is a unicast one"));
        Assert.That(ex.Problems.Single().Source, Is.EqualTo("--pool"));
    }

    [TestCase("198.51.100.0-224.0.0.9", "224.0.0.0-224.0.0.4,224.0.0.3-224.0.0.9")] // overlapping exclusions
    [TestCase("198.51.100.0-224.0.0.9", "224.0.0.3-224.0.0.9,224.0.0.0-224.0.0.4")] // the same, the later one first
    [TestCase("198.51.100.0/24", "")]
    [TestCase("2001:db8::/120", "")]
    public void A_pool_whose_exclusions_take_out_every_such_address_is_served(string pool, string exclude)
    {
        var options = new Dictionary<string, string?> { ["Pool"] = pool, ["Provisioner"] = "anyip" };
        if (exclude != "") options["Exclude"] = exclude;
        Assert.That(Load(options: options).Pools, Has.Count.EqualTo(1));
    }

    [Test]
    public void An_ipv6_prefix_in_a_pool_declared_ipv4_is_refused()
    {
        var ex = Fails(options: new() { ["Pool"] = "2001:db8::/120", ["Family"] = "ipv4" });
        Assert.That(ex.Message, Does.Contain("--pool").And.Contain("is IPv4, and this is an IPv6 range"));
    }

    [Test]
    public void Exclusions_that_cover_the_whole_range_leave_an_empty_pool()
    {
        var ex = Fails(options: new() { ["Pool"] = "127.100.0.0/30", ["Exclude"] = "127.100.0.0-127.100.0.3" });
        Assert.That(ex.Message, Does.Contain("--exclude").And.Contain("is empty"));
    }

    [TestCase("Strategy", "fastest", "unknown allocation strategy")]
    [TestCase("Allocation", "soon", "eager")]
    [TestCase("Provisioner", "magic", "no such provisioner")]
    [TestCase("MaxAddresses", "lots", "not a whole number")]
    [TestCase("StateDir", "relative/dir", "absolute path")]
    [TestCase("DhcpProbe", "200", "addresses leased by a DHCP server")]
    [TestCase("Prefetch", "-1", "prefetch must be from 0 to 10000")]
    [TestCase("DhcpRate", "0", "the DHCP rate is from 0.1 to 10000 acquisition packets a second")]
    [TestCase("ConflictProbe", "200", "the conflict probe checks a static pool's addresses before the netlink provisioner adds them")]
    public void Unknown_words_are_refused_with_what_is_known(string key, string value, string why)
    {
        var ex = Fails(options: new() { [key] = value });
        Assert.That(ex.Message, Does.Contain(why));
        Assert.That(ex.Problems.Single().Source, Does.StartWith("--"));
    }

    /// <summary>The wait of the conflict probe is bounded.</summary>
    [TestCase("192.0.2.0/29", "20000", "the conflict probe waits from 0 (no probe) to 10000 milliseconds")]
    public void The_conflict_probe_is_refused_where_it_cannot_work(string pool, string wait, string why)
    {
        var ex = Fails(options: new() { ["Pool"] = pool, ["Provisioner"] = "netlink", ["Interface"] = "eth0", ["ConflictProbe"] = wait });
        Assert.That(ex.Message, Does.Contain(why));
        Assert.That(ex.Problems.Single().Source, Is.EqualTo("--conflict-probe"));
    }

    [Test]
    public void Every_problem_is_reported_at_once()
    {
        var ex = Fails(env: new() { ["SOCKSHIM_POOL"] = "127.1/8", ["SOCKSHIM_STRATEGY"] = "best", ["SOCKSHIM_ALLOCATION"] = "never" });
        Assert.That(ex.Problems, Has.Count.EqualTo(3));
    }

    [Test]
    public void A_file_that_is_missing_or_not_json_is_named()
    {
        Assert.That(Fails(env: new() { ["SOCKSHIM_CONFIG"] = "/nonexistent/sockshim.json" }).Message, Does.Contain("does not exist"));
        string file = Path.GetTempFileName();
        File.WriteAllText(file, "{ pools: [ ");
        try { Assert.That(Fails(env: new() { ["SOCKSHIM_CONFIG"] = file }).Message, Does.Contain(file).And.Contain("not valid JSON")); }
        finally { File.Delete(file); }
    }

    [Test]
    public void A_stack_finds_pools_by_family_and_name()
    {
        using var t = new TestStack(name: "voice");
        Assert.That(t.Stack.FindPool(System.Net.Sockets.AddressFamily.InterNetwork, "VOICE", out _), Is.SameAs(t.Pool));
        Assert.That(t.Stack.FindPool(System.Net.Sockets.AddressFamily.InterNetwork, "video", out var e1), Is.Null);
        Assert.That(e1!.Code, Is.EqualTo(StackErrorCode.UnknownPool));
        Assert.That(t.Stack.FindPool(System.Net.Sockets.AddressFamily.InterNetworkV6, null, out var e2), Is.Null);
        Assert.That(e2!.Code, Is.EqualTo(StackErrorCode.NoPoolForFamily));
    }
}
