using System.Diagnostics;
using System.Net;
using System.Text.RegularExpressions;

namespace SockShim.Tests.Network;

/// <summary>
/// Many addresses on one interface, proved across a real (virtual) link: the server in namespace
/// B reports the sources, a capture on A's link shows the wire, `ip addr` shows what was added
/// and removed.
/// </summary>
[NonParallelizable]
public class SharedNicTests
{
    private TwoHosts _hosts = null!;

    [OneTimeSetUp]
    public void Hosts()
    {
        TwoHosts.RequireRoot();
        _hosts = new TwoHosts();
        // B reaches the netlink pool on the link itself (A answers ARP for the addresses on vA),
        // and the AnyIP prefixes through A.
        // Documentation ranges only: IPv4 has three /24s (192.0.2.0/24 is the link), so the
        // thousand-address runs are IPv6; the IPv4 runs use a whole /24 each.
        // Routed through A rather than on-link, so B keeps one neighbour entry, not one per address.
        TwoHosts.Ip($"-n {_hosts.B} route add 198.51.100.0/24 via 192.0.2.1");
        TwoHosts.Ip($"-n {_hosts.B} -6 route add 2001:db8:b::/112 via 2001:db8:a::1");
        TwoHosts.Ip($"-n {_hosts.B} route add 203.0.113.0/24 via 192.0.2.1");
        TwoHosts.Ip($"-n {_hosts.B} -6 route add 2001:db8:1::/64 via 2001:db8:a::1");
        TwoHosts.Ip($"-n {_hosts.A} route add local 203.0.113.0/24 dev lo");
        TwoHosts.Ip($"-n {_hosts.A} -6 route add local 2001:db8:1::/64 dev lo");
    }

    [OneTimeTearDown]
    public void Remove() => _hosts?.Dispose();

    private Dictionary<string, string> Pool(string ranges, string provisioner, string name, string? extra = null)
    {
        var env = new Dictionary<string, string>
        {
            ["SOCKSHIM_POOL"] = ranges,
            ["SOCKSHIM_POOLNAME"] = name,
            ["SOCKSHIM_PROVISIONER"] = provisioner,
            ["SOCKSHIM_STATEDIR"] = _hosts.StateDirectory,
            ["SOCKSHIM_MAXADDRESSES"] = "4096",
        };
        if (provisioner == "netlink") env["SOCKSHIM_INTERFACE"] = TwoHosts.LinkA;
        if (extra is not null) env[extra.Split('=')[0]] = extra.Split('=')[1];
        return env;
    }

    /// <summary>Starts the echo server in B and a capture of SYNs on A's link, runs the
    /// TupleClient in A with <paramref name="count"/> sockets, and returns what each saw.</summary>
    private (List<IPEndPoint> ServerSaw, List<IPAddress> OnTheWire, string Capture) Run(string server, int count, Dictionary<string, string> env)
    {
        var endpoint = IPEndPoint.Parse(server);
        // SYNs only (BPF's tcp[] reads IPv4 only: for IPv6 the flags are at 40 + 13).
        string filter = endpoint.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
            ? $"ip6 and tcp dst port {endpoint.Port} and ip6[53] & 0x12 == 0x02"
            : $"tcp dst port {endpoint.Port} and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn";
        using var capture = TwoHosts.StartIn(_hosts.A, "SockShim.PcapProbe", [TwoHosts.LinkA, filter, "120"], redirectInput: true);
        Assert.That(capture.StandardOutput.ReadLine(), Is.EqualTo("ready"), () => capture.StandardError.ReadToEnd());
        var captured = capture.StandardOutput.ReadToEndAsync();

        using var echo = TwoHosts.StartIn(_hosts.B, "EchoServer", ["--listen", server, "--expect", count.ToString(), "--timeout", "120"]);
        Assert.That(echo.StandardOutput.ReadLine(), Does.StartWith("listening"), () => echo.StandardError.ReadToEnd());
        var serverOut = echo.StandardOutput.ReadToEndAsync();

        var (exit, clientOut, clientErr) = TwoHosts.RunIn(_hosts.A, "TupleClient", ["--server", server, "--count", count.ToString()], env, TimeSpan.FromMinutes(3));
        if (exit != 0)
        {
            bool ended = echo.WaitForExit(1000);
            Assert.Fail($"client: {clientOut[^Math.Min(clientOut.Length, 300)..]} {clientErr}; server ended: {ended} {(ended ? echo.ExitCode : 0)} {(ended ? serverOut.Result[^Math.Min(serverOut.Result.Length, 300)..] + echo.StandardError.ReadToEnd() : "")}");
        }
        Assert.That(echo.WaitForExit(TimeSpan.FromSeconds(60)), Is.True, "the server served every socket");
        capture.StandardInput.Close();
        Assert.That(capture.WaitForExit(TimeSpan.FromSeconds(30)), Is.True);

        var saw = Regex.Matches(serverOut.Result, @"peer (\S+) said").Select(m => IPEndPoint.Parse(m.Groups[1].Value)).ToList();
        var wire = Regex.Matches(captured.Result, @"^syn (\S+) ", RegexOptions.Multiline).Select(m => IPAddress.Parse(m.Groups[1].Value)).ToList();
        Assert.That(captured.Result, Does.Contain("dropped 0"), "the capture kept every packet");
        return (saw, wire, captured.Result);
    }

    private static void AssertFromPool(List<IPEndPoint> saw, List<IPAddress> wire, int count, Func<IPAddress, bool> inPool, string capture = "")
    {
        Assert.That(saw, Has.Count.EqualTo(count));
        var sources = saw.Select(e => e.Address).ToHashSet();
        Assert.That(sources, Has.Count.EqualTo(count), "the server saw one distinct source per socket");
        Assert.That(sources.All(inPool), Is.True, "all from the pool");
        Assert.That(wire.ToHashSet().SetEquals(sources), Is.True, $"the capture on A's one link shows the same {count} sources ({wire.Count} SYNs, {wire.Distinct().Count()} distinct): {capture[..Math.Min(capture.Length, 400)]}");
    }

    [Test]
    public void A_thousand_netlink_addresses_on_one_interface_reach_the_server_and_are_gone_after_close()
    {
        var before = _hosts.AddressesOnA();
        var (saw, wire, capture) = Run("[2001:db8:a::2]:7000", 1000, Pool("2001:db8:b::/112", "netlink", "nic6"));
        AssertFromPool(saw, wire, 1000, a => a.ToString().StartsWith("2001:db8:b::"), capture);
        // Each connect starts right after its address is added: had the address's local route
        // not been in place yet, the SYN-ACK would have been dropped and the SYN sent again.
        Assert.That(wire, Has.Count.EqualTo(1000), "one SYN per socket: none resent for want of the new address's local route");
        Assert.That(_hosts.AddressesOnA(), Is.EquivalentTo(before), "none of the pool's addresses remains on vA");
    }

    /// <summary>Prefetch on a netlink pool: sockets take addresses the pool put on the interface
    /// ahead of them (IPv6, where the kernel's add is slowest), each works on the wire, and the
    /// ready ones leave the interface with the process.</summary>
    [Test]
    public void Prefetched_netlink_addresses_work_on_the_wire_and_leave_with_the_process()
    {
        var before = _hosts.AddressesOnA();
        var (saw, wire, capture) = Run("[2001:db8:a::2]:7004", 300, Pool("2001:db8:b::f000-2001:db8:b::ffff", "netlink", "nic6ready", "SOCKSHIM_PREFETCH=32"));
        AssertFromPool(saw, wire, 300, a => a.ToString().StartsWith("2001:db8:b::f"), capture);
        Assert.That(_hosts.AddressesOnA(), Is.EquivalentTo(before), "neither the sockets' nor the ready addresses remain on vA");
    }

    [Test]
    public void A_whole_ipv4_slash_24_of_netlink_addresses_on_one_interface()
    {
        var before = _hosts.AddressesOnA();
        var (saw, wire, capture) = Run("192.0.2.2:7003", 254, Pool("198.51.100.1-198.51.100.254", "netlink", "nic4"));
        AssertFromPool(saw, wire, 254, a => a.ToString().StartsWith("198.51.100."), capture);
        Assert.That(_hosts.AddressesOnA(), Is.EquivalentTo(before));
    }

    [Test]
    public void Anyip_sockets_from_an_ipv4_prefix()
    {
        var before = _hosts.AddressesOnA();
        var (saw, wire, capture) = Run("192.0.2.2:7001", 254, Pool("203.0.113.1-203.0.113.254", "anyip", "anyip4"));
        AssertFromPool(saw, wire, 254, a => a.ToString().StartsWith("203.0.113."), capture);
        Assert.That(_hosts.AddressesOnA(), Is.EquivalentTo(before), "nothing per address on the interface");
    }

    [Test]
    public void A_thousand_anyip_sockets_from_an_ipv6_prefix()
    {
        var before = _hosts.AddressesOnA();
        var (saw, wire, capture) = Run("[2001:db8:a::2]:7002", 1000, Pool("2001:db8:1::/64", "anyip", "anyip6"));
        AssertFromPool(saw, wire, 1000, a => a.ToString().StartsWith("2001:db8:1:"), capture);
        Assert.That(_hosts.AddressesOnA(), Is.EquivalentTo(before));
    }

    [Test]
    public void Gc_removes_exactly_what_a_killed_client_left_and_keeps_an_address_added_by_hand()
    {
        var env = Pool("198.51.100.0/24", "netlink", "crash");
        using var agent = TwoHosts.StartIn(_hosts.A, "SockShim.TestAgent", ["hold", "20"], env);
        var held = new List<string>();
        string? line;
        while ((line = agent.StandardOutput.ReadLine()) is not null && line != "held")
            if (line.StartsWith("lease ")) held.Add(line[6..]);
        Assert.That(held, Has.Count.EqualTo(20), () => agent.StandardError.ReadToEnd());
        Assert.That(_hosts.AddressesOnA(), Is.SupersetOf(held));

        TwoHosts.Run("kill", ["-9", agent.Id.ToString()]);
        Assert.That(agent.WaitForExit(10_000), Is.True, "the client is gone");
        Assert.That(_hosts.AddressesOnA(), Is.SupersetOf(held), "SIGKILL leaves the addresses behind");
        TwoHosts.Ip($"-n {_hosts.A} addr add 198.51.100.250/32 dev {TwoHosts.LinkA}");

        var (exit, output, error) = TwoHosts.RunIn(_hosts.A, "SockShim.Interceptor", ["gc", "--state-dir", _hosts.StateDirectory]);
        Assert.That(exit, Is.Zero, output + error);
        var after = _hosts.AddressesOnA();
        Assert.That(after.Intersect(held), Is.Empty, "every address the killed client held is gone");
        Assert.That(after, Does.Contain("198.51.100.250"), "the address added by hand survives");
        Assert.That(after, Does.Contain("192.0.2.1"));
        Assert.That(Regex.Matches(output, "^removed ", RegexOptions.Multiline), Has.Count.EqualTo(20), output);
        TwoHosts.Ip($"-n {_hosts.A} addr del 198.51.100.250/32 dev {TwoHosts.LinkA}");
    }

    [Test]
    public void An_address_already_on_the_host_is_skipped_and_never_taken_over()
    {
        TwoHosts.Ip($"-n {_hosts.A} addr add 198.51.100.76/32 dev {TwoHosts.LinkA}");
        try
        {
            var (exit, output, _) = TwoHosts.RunIn(_hosts.A, "SockShim.TestAgent", ["leak", "1"], Pool("198.51.100.76-198.51.100.77", "netlink", "skip"));
            Assert.That(exit, Is.Zero, output);
            Assert.That(output, Does.Contain("leaked 1"), "the free address was taken instead");

            var (_, alone, _) = TwoHosts.RunIn(_hosts.A, "SockShim.TestAgent", ["hold", "1"], Pool("198.51.100.76/32", "netlink", "taken"), TimeSpan.FromSeconds(30));
            Assert.That(alone, Does.Contain("error").And.Contain("198.51.100.76").And.Contain("already present on this host").And.Contain("never takes over"));
            Assert.That(_hosts.AddressesOnA(), Does.Contain("198.51.100.76"), "the address added by hand is still there");
        }
        finally { TwoHosts.Ip($"-n {_hosts.A} addr del 198.51.100.76/32 dev {TwoHosts.LinkA}"); }
    }

    [Test]
    public void Added_addresses_are_announced_to_the_peer()
    {
        using var capture = TwoHosts.StartIn(_hosts.B, "SockShim.PcapProbe", [TwoHosts.LinkB, "arp or (icmp6 and ip6[40] == 136)", "60"], redirectInput: true);
        Assert.That(capture.StandardOutput.ReadLine(), Is.EqualTo("ready"));
        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var reader = Task.Run(() => { while (capture.StandardOutput.ReadLine() is { } l) lines.Enqueue(l); });
        var held = new List<string>();
        foreach (var (ranges, name) in new[] { ("198.51.100.0/24", "garp"), ("2001:db8:a::100-2001:db8:a::1ff", "unsolicited-na") })
        {
            var env = Pool(ranges, "netlink", name, "SOCKSHIM_ANNOUNCE=true");
            using var agent = TwoHosts.StartIn(_hosts.A, "SockShim.TestAgent", ["hold", "2"], env);
            string? line;
            while ((line = agent.StandardOutput.ReadLine()) is not null && line != "held")
                if (line.StartsWith("lease ")) held.Add(line[6..]);
            agent.Kill();
            agent.WaitForExit(10_000);
        }
        // Until the capture has shown every announcement (bounded): the frames were sent before
        // the agents said "held", and only the capture's buffer stands between.
        bool Announced(string a) => lines.Any(l => a.Contains(':') ? l == $"na {a}" : l.StartsWith($"arp Request {a} "));
        SpinWait.SpinUntil(() => held.All(Announced), TimeSpan.FromSeconds(10));
        capture.StandardInput.Close();
        Assert.That(capture.WaitForExit(20_000), Is.True);
        Assert.That(reader.Wait(TimeSpan.FromSeconds(10)), Is.True);
        TwoHosts.RunIn(_hosts.A, "SockShim.Interceptor", ["gc", "--state-dir", _hosts.StateDirectory]);
        string captured = string.Join('\n', lines);
        Assert.That(held, Has.Count.EqualTo(4));
        foreach (var v4 in held.Where(a => !a.Contains(':'))) Assert.That(captured, Does.Contain($"arp Request {v4}"), captured);
        foreach (var v6 in held.Where(a => a.Contains(':'))) Assert.That(captured, Does.Contain($"na {v6}"), captured);
    }
}

