using System.Diagnostics;

namespace SockShim.Tests.Network;

/// <summary>
/// Two hosts (namespaces A and B, each with a state directory of its own, so nothing but the
/// link coordinates them) run the same static netlink pool on one link. With the conflict probe
/// (IPv4: an RFC 5227 ARP probe before an address is added; IPv6: the kernel's duplicate
/// address detection, RFC 4862) B skips what A holds: no address is live on both, by `ip addr`
/// on each host, and a capture on the link shows B's probes and A's answers. Without it B takes
/// the very addresses A holds: the collision the probe prevents, so the test can fail.
/// </summary>
[NonParallelizable]
public class SharedPoolTests
{
    private const string Range = "192.0.2.10-192.0.2.15", Range6 = "2001:db8:a::10-2001:db8:a::15";
    private TwoHosts _hosts = null!;
    private string _stateA = "", _stateB = "";
    private readonly List<Process> _agents = [];

    [SetUp]
    public void Hosts()
    {
        TwoHosts.RequireRoot();
        _hosts = new TwoHosts();
        string id = Guid.NewGuid().ToString("N")[..8];
        _stateA = $"/dev/shm/sockshim-test-shared-a-{id}";
        _stateB = $"/dev/shm/sockshim-test-shared-b-{id}";
    }

    [TearDown]
    public void Remove()
    {
        foreach (var agent in _agents)
        {
            try { agent.Kill(entireProcessTree: true); agent.WaitForExit(10_000); } catch (InvalidOperationException) { }
            agent.Dispose();
        }
        _agents.Clear();
        _hosts?.Dispose(); // the links go with the namespaces, and every address on them
        foreach (var dir in new[] { _stateA, _stateB })
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
    }

    private static Dictionary<string, string> Pool(string state, string link, int probeMilliseconds, bool v6 = false) => new()
    {
        ["SOCKSHIM_POOL"] = v6 ? Range6 : Range,
        ["SOCKSHIM_POOLNAME"] = "shared",
        ["SOCKSHIM_PROVISIONER"] = "netlink",
        ["SOCKSHIM_INTERFACE"] = link,
        ["SOCKSHIM_STATEDIR"] = state,
        ["SOCKSHIM_STRATEGY"] = "sequential",
        ["SOCKSHIM_CONFLICTPROBE"] = probeMilliseconds.ToString(),
    };

    /// <summary>An agent in <paramref name="ns"/> that takes <paramref name="count"/> addresses and
    /// holds them; the addresses it reports once it holds them all.</summary>
    private List<string> Hold(string ns, int count, Dictionary<string, string> env)
    {
        var agent = TwoHosts.StartIn(ns, "SockShim.TestAgent", ["hold", count.ToString()], env);
        _agents.Add(agent);
        var leases = new List<string>();
        while (Programs.Line(agent) is { } line && line != "held")
        {
            Assert.That(line, Does.StartWith("lease "), () => line + agent.StandardError.ReadToEnd());
            leases.Add(line["lease ".Length..]);
        }
        Assert.That(leases, Has.Count.EqualTo(count));
        return leases;
    }

    private static List<string> PoolAddressesOn(string ns, string link, bool v6 = false) =>
        TwoHosts.Ip($"-n {ns} -o {(v6 ? "-6" : "-4")} addr show dev {link}").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[3].Split('/')[0])
            .Where(a => v6 ? a.StartsWith("2001:db8:a::1") && a.Length == "2001:db8:a::10".Length : a.StartsWith("192.0.2.1") && a.Length == "192.0.2.10".Length).Order().ToList();

    /// <summary>IPv6: B's kernel sends a DAD solicitation (from ::) for each address before it may
    /// be used; A's kernel answers for those it holds, and B skips them, taking the next.</summary>
    [Test, CancelAfter(120_000)]
    public void With_duplicate_address_detection_two_hosts_sharing_an_IPv6_pool_never_hold_one_address()
    {
        var (a, b, wire) = ProbedOnBoth(v6: true, filter: "icmp6");
        Assert.That(TwoHosts.Ip($"-n {_hosts.B} -6 addr show dev {TwoHosts.LinkB}"), Does.Not.Contain("dadfailed").And.Not.Contain("tentative"), "B removed the addresses it could not use");
        foreach (var held in a)
        {
            Assert.That(wire, Does.Contain($"ns :: {held}"), $"B's kernel probed {held} (DAD, from ::): {wire}");
            Assert.That(wire, Does.Contain($"na {held}"), $"and A's answered for it: {wire}");
        }
        foreach (var taken in b) Assert.That(wire, Does.Contain($"ns :: {taken}"), $"B probed what it took, {taken}, before using it: {wire}");
    }

    /// <summary>Where the kernel skips DAD (accept_dad 0, a NOARP interface) the probe of an IPv6
    /// pool would check nothing: the acquisition fails saying why, and nothing is left on the interface.</summary>
    [TestCase("accept_dad"), TestCase("noarp"), CancelAfter(120_000)]
    public void An_IPv6_pool_with_the_probe_refuses_an_interface_where_the_kernel_skips_DAD(string how)
    {
        if (how == "accept_dad") TwoHosts.Run("ip", ["netns", "exec", _hosts.B, "sysctl", "-q", "-w", $"net.ipv6.conf.{TwoHosts.LinkB}.accept_dad=0"]);
        else TwoHosts.Ip($"-n {_hosts.B} link set {TwoHosts.LinkB} arp off");
        var agent = TwoHosts.StartIn(_hosts.B, "SockShim.TestAgent", ["hold", "1"], Pool(_stateB, TwoHosts.LinkB, 200, v6: true));
        _agents.Add(agent);
        string? line = Programs.Line(agent);
        Assert.That(line, Does.StartWith("error ").And.Contain(how == "accept_dad"
            ? $"duplicate address detection is off on {TwoHosts.LinkB} (/proc/sys/net/ipv6/conf/{TwoHosts.LinkB}/accept_dad is 0)"
            : $"{TwoHosts.LinkB} is a NOARP interface, where the kernel does no duplicate address detection"), line + agent.StandardError.ReadToEnd());
        Assert.That(PoolAddressesOn(_hosts.B, TwoHosts.LinkB, v6: true), Is.Empty, "no address of the pool was added");
    }

    [Test, CancelAfter(120_000)]
    public void Without_duplicate_address_detection_the_second_host_takes_IPv6_addresses_the_first_holds() => AssertCollision(v6: true);

    [Test, CancelAfter(120_000)]
    public void With_the_conflict_probe_two_hosts_sharing_a_static_pool_never_hold_one_address()
    {
        var (a, b, wire) = ProbedOnBoth(v6: false, filter: "arp");
        foreach (var held in a)
        {
            Assert.That(wire, Does.Contain($"arp Request 0.0.0.0 {held}"), $"B probed {held} on the link: {wire}");
            Assert.That(wire, Does.Contain($"arp Response {held} "), $"and A answered for it: {wire}");
        }
        foreach (var taken in b) Assert.That(wire, Does.Contain($"arp Request 0.0.0.0 {taken}"), $"B probed what it took, {taken}, before adding it: {wire}");
    }

    /// <summary>A takes three addresses of the shared pool, then B takes three, both with the probe
    /// (200 ms; IPv6: the kernel's DAD), while B's link is captured with <paramref name="filter"/>:
    /// `ip addr` on each host shows exactly its own holds and none is on both. What each took,
    /// and what the capture saw.</summary>
    private (List<string> A, List<string> B, string Wire) ProbedOnBoth(bool v6, string filter)
    {
        using var capture = TwoHosts.StartIn(_hosts.B, "SockShim.PcapProbe", [TwoHosts.LinkB, filter, "90"], redirectInput: true);
        Assert.That(Programs.Line(capture), Is.EqualTo("ready"));
        var a = Hold(_hosts.A, 3, Pool(_stateA, TwoHosts.LinkA, 200, v6));
        var clock = Stopwatch.StartNew();
        var b = Hold(_hosts.B, 3, Pool(_stateB, TwoHosts.LinkB, 200, v6));
        TestContext.Out.WriteLine($"B took its 3 addresses in {clock.Elapsed.TotalMilliseconds:F0} ms, skipping A's 3");
        var onA = PoolAddressesOn(_hosts.A, TwoHosts.LinkA, v6);
        var onB = PoolAddressesOn(_hosts.B, TwoHosts.LinkB, v6);
        Assert.That(onA, Is.EqualTo(a.Order().ToList()), "ip addr on A shows what A's sockets hold");
        Assert.That(onB, Is.EqualTo(b.Order().ToList()), "ip addr on B shows what B's sockets hold");
        Assert.That(onA.Intersect(onB), Is.Empty, $"no address live on both hosts: A {string.Join(",", onA)}, B {string.Join(",", onB)}");
        capture.StandardInput.Close();
        string wire = capture.StandardOutput.ReadToEnd();
        Assert.That(capture.WaitForExit(20_000), Is.True);
        return (a, b, wire);
    }

    [Test, CancelAfter(120_000)]
    public void Without_the_conflict_probe_the_second_host_takes_addresses_the_first_holds() => AssertCollision(v6: false);

    // Without the probe B takes the very addresses A holds: the collision it prevents.
    private void AssertCollision(bool v6)
    {
        var a = Hold(_hosts.A, 3, Pool(_stateA, TwoHosts.LinkA, 0, v6));
        var b = Hold(_hosts.B, 3, Pool(_stateB, TwoHosts.LinkB, 0, v6));
        var onA = PoolAddressesOn(_hosts.A, TwoHosts.LinkA, v6);
        var onB = PoolAddressesOn(_hosts.B, TwoHosts.LinkB, v6);
        Assert.That(onA, Is.EqualTo(a.Order().ToList()));
        Assert.That(onB, Is.EqualTo(b.Order().ToList()));
        Assert.That(onA.Intersect(onB), Is.Not.Empty, $"the collision the probe prevents: A {string.Join(",", onA)}, B {string.Join(",", onB)}");
    }
}
