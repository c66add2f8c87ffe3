using System.Diagnostics;
using System.Text.RegularExpressions;

namespace SockShim.Tests.Network;

/// <summary>
/// Leases from real DHCP servers on a LAN of namespaces: the server's lease file, the client
/// host's interface and a server that sees the connections are the witnesses.
/// </summary>
[NonParallelizable]
public class DhcpTests
{
    [SetUp]
    public void Root() => TwoHosts.RequireRoot();

    /// <summary>Starts the agent's tuple sockets in <paramref name="ns"/> and waits until all are held.</summary>
    internal static (Process Agent, List<string> Addresses) HoldSockets(DhcpLan lan, string ns, int count, Dictionary<string, string> env, string server = "192.0.2.254:7100", bool udp = false)
    {
        var agent = lan.Track(TwoHosts.StartIn(ns, "SockShim.TestAgent", ["sockets", count.ToString(), server, udp ? "udp" : "tcp"], env, redirectInput: true));
        return (agent, Held(lan, agent, ns, count));
    }

    internal static List<string> Held(DhcpLan lan, Process agent, string ns, int count)
    {
        var addresses = new List<string>();
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(3);
        string? line;
        while ((line = agent.StandardOutput.ReadLine()) is not null && line != "held" && DateTime.UtcNow < deadline)
        {
            if (line.StartsWith("error")) Assert.Fail($"{ns}: {line} {agent.StandardError.ReadToEnd()}\nserver log:\n{lan.ServerLogTail()}");
            var m = Regex.Match(line, @"^socket (\S+):\d+ ");
            if (m.Success) addresses.Add(m.Groups[1].Value);
        }
        Assert.That(line, Is.EqualTo("held"), () => $"{ns} did not get its {count} sockets: {agent.StandardError.ReadToEnd()}");
        Assert.That(addresses, Has.Count.EqualTo(count));
        return addresses;
    }

    /// <summary>Asks the agent to send on every socket; its line per socket.</summary>
    internal static List<string> Use(Process agent)
    {
        agent.StandardInput.WriteLine("use");
        agent.StandardInput.Flush();
        var lines = new List<string>();
        string? line;
        while ((line = agent.StandardOutput.ReadLine()) is not null && line != "used") lines.Add(line);
        return lines;
    }

    internal static Process Echo(DhcpLan lan, int expect, string listen = "192.0.2.254:7100")
    {
        var echo = lan.Track(TwoHosts.StartIn(lan.Server, "EchoServer", ["--listen", listen, "--expect", expect.ToString(), "--timeout", "300"]));
        Assert.That(echo.StandardOutput.ReadLine(), Does.StartWith("listening"), () => echo.StandardError.ReadToEnd());
        return echo;
    }

    /// <summary>Closes the agent's sockets; returns the SockShim counters it read with a MeterListener.</summary>
    internal static Dictionary<string, long> Close(Process agent)
    {
        agent.StandardInput.WriteLine("close");
        agent.StandardInput.Flush();
        var rest = agent.StandardOutput.ReadToEndAsync();
        Assert.That(agent.WaitForExit(TimeSpan.FromSeconds(60)), Is.True, "the agent closes its sockets and exits");
        Assert.That(agent.ExitCode, Is.Zero, () => agent.StandardError.ReadToEnd());
        return Regex.Matches(rest.Result, @"^metric (\S+) (-?\d+)$", RegexOptions.Multiline).ToDictionary(m => m.Groups[1].Value, m => long.Parse(m.Groups[2].Value));
    }

    [Test]
    public void Five_hundred_sockets_each_hold_a_lease_of_their_own_and_give_it_back_on_close()
    {
        using var lan = new DhcpLan(clients: 1);
        lan.StartDnsmasq();
        string host = lan.Clients[0];
        var echo = Echo(lan, 500);
        var echoOut = echo.StandardOutput.ReadToEndAsync();

        var (agent, addresses) = HoldSockets(lan, host, 500, lan.Pool());

        Assert.That(addresses, Has.Count.EqualTo(500).And.Unique);
        var leases = lan.Leases();
        string mac = lan.MacOf(host);
        Assert.Multiple(() =>
        {
            Assert.That(leases, Has.Count.EqualTo(500), "the server's lease file");
            Assert.That(leases.Select(l => l.ClientId).Distinct().Count(), Is.EqualTo(500), "one client identifier per socket");
            Assert.That(leases.Select(l => l.Mac).Distinct(), Is.EqualTo(new[] { mac }), "all for one MAC");
            Assert.That(leases.Select(l => l.Address), Is.EquivalentTo(addresses), "each socket's address is its lease");
            Assert.That(lan.AddressesOf(host), Is.SupersetOf(addresses), "every leased address is on eth0");
        });
        Close(agent);
        // The server counts a connection when it ends.
        Assert.That(echo.WaitForExit(TimeSpan.FromSeconds(60)), Is.True);
        Assert.That(echoOut.Result, Does.Contain("distinct source addresses: 500 in 500 served"), "the server saw each connection from its own lease");
        Assert.That(DhcpLan.Eventually(() => lan.Leases().Count == 0, TimeSpan.FromSeconds(20)), Is.True,
            () => $"the lease file still lists {lan.Leases().Count} leases after the sockets closed; server UDP: {lan.ServerUdpCounters()}; releases logged: {File.ReadLines(Path.Combine(lan.Directory, "dnsmasq.log")).Count(l => l.Contains("DHCPRELEASE"))}");
        Assert.That(lan.AddressesOf(host), Is.EqualTo(new[] { "192.0.2.1" }), "only the host's own address is left on eth0");
    }

    /// <summary>Two client hosts against one server. The three documentation /24s hold 723
    /// leasable addresses, so each host takes 350 rather than the 500 of a larger subnet.</summary>
    [Test]
    public void Two_hosts_share_one_server_without_a_duplicate_address()
    {
        const int each = 350;
        using var lan = new DhcpLan(clients: 2);
        lan.StartDnsmasq();
        var echo = Echo(lan, 2 * each);
        var echoOut = echo.StandardOutput.ReadToEndAsync();

        // Both hosts acquire at the same time.
        var first = Task.Run(() => HoldSockets(lan, lan.Clients[0], each, lan.Pool()));
        var second = Task.Run(() => HoldSockets(lan, lan.Clients[1], each, lan.Pool()));
        var (agent1, addresses1) = first.Result;
        var (agent2, addresses2) = second.Result;

        Assert.That(addresses1, Has.Count.EqualTo(each).And.Unique);
        Assert.That(addresses2, Has.Count.EqualTo(each).And.Unique);
        Assert.That(addresses1.Intersect(addresses2), Is.Empty, "no address leased to both hosts");
        var leases = lan.Leases();
        Assert.That(leases, Has.Count.EqualTo(2 * each));
        Assert.That(leases.GroupBy(l => l.Mac).Select(g => g.Count()), Is.EquivalentTo(new[] { each, each }), "one MAC per host");
        Assert.That(lan.AddressesOf(lan.Clients[0]).Intersect(lan.AddressesOf(lan.Clients[1])), Is.Empty, "the interfaces share no address");

        Close(agent1);
        Close(agent2);
        Assert.That(echo.WaitForExit(TimeSpan.FromSeconds(60)), Is.True);
        Assert.That(echoOut.Result, Does.Contain($"distinct source addresses: {2 * each} in {2 * each} served"));
        Assert.That(DhcpLan.Eventually(() => lan.Leases().Count == 0, TimeSpan.FromSeconds(20)), Is.True,
            () => $"every lease released; {lan.Leases().Count} left; server UDP: {lan.ServerUdpCounters()}; releases logged: {File.ReadLines(Path.Combine(lan.Directory, "dnsmasq.log")).Count(l => l.Contains("DHCPRELEASE"))}");
    }

    /// <summary>Kea with 6-second leases: sockets keep their addresses across several renewals;
    /// with the server gone, renewing and rebinding fail, and at expiry SockShim closes each
    /// socket. Under the launcher (ordinary sockets of an unmodified program) the app's next call
    /// fails with a SocketException that says so; a TupleSocket is closed with the reason on its lease.</summary>
    [Test]
    public void Leases_renew_while_in_use_and_expiry_closes_the_socket_with_a_clear_error()
    {
        using var lan = new DhcpLan(clients: 1);
        var kea = lan.StartKea(valid: 6, renew: 2, rebind: 4);
        string host = lan.Clients[0];
        var echo = Echo(lan, 0);
        var env = lan.Pool();

        var launched = lan.Track(Programs.Start("SockShim.Interceptor",
            ["run", "--", "dotnet", Programs.PathOf("SockShim.TestAgent"), "sockets", "3", "192.0.2.254:7100", "tcp", "plain"], env, host, redirectInput: true));
        var underLauncher = Held(lan, launched, host, 3);
        var (tuple, tupleAddresses) = HoldSockets(lan, host, 2, env);
        var all = underLauncher.Concat(tupleAddresses).ToList();
        Assert.That(all, Has.All.StartsWith("203.0.113."), "each socket leased its address from Kea");
        Assert.That(all, Is.Unique);

        // Past a whole lifetime: still in use, so renewed (each renewal appends a row to Kea's file).
        Thread.Sleep(TimeSpan.FromSeconds(8));
        Assert.That(Use(launched), Has.All.StartsWith("ok"));
        Assert.That(Use(tuple), Has.All.StartsWith("ok"));
        var rows = lan.KeaRows();
        foreach (var address in all)
            Assert.That(rows.Count(r => r.Address == address && r.Lifetime > 0), Is.GreaterThanOrEqualTo(3), $"{address} was renewed (Kea's rows: {rows.Count})");

        kea.Kill(true);
        Assert.That(kea.WaitForExit(10_000), Is.True);
        // Renewing (T1) and rebinding (T2) get no answer; expiry is at most 6 s after the last renewal.
        Assert.That(DhcpLan.Eventually(() => !lan.AddressesOf(host).Intersect(all).Any(), TimeSpan.FromSeconds(15)), Is.True,
            () => $"the expired addresses left eth0: {string.Join(" ", lan.AddressesOf(host))}");

        // The kernel drops each address when its lifetime (the lease's, in whole seconds) runs
        // out, which can be up to a second before the client's own expiry closes the sockets.
        List<string> afterLauncher = new(), afterTuple = new();
        DhcpLan.Eventually(() => (afterLauncher = Use(launched)).All(l => l.Contains("closed because its address is gone")) & (afterTuple = Use(tuple)).All(l => l.StartsWith("disposed")), TimeSpan.FromSeconds(5));
        Assert.That(afterLauncher, Has.Count.EqualTo(3));
        Assert.That(afterLauncher, Has.All.Match(@"^error \S+ AddressNotAvailable SockShim: this socket was closed because its address is gone: the lease on 203\.0\.113\.\d+ from server 203\.0\.113\.254 expired at .* renewal and rebinding got no answer \(pool 'dhcp'\)$"));
        Assert.That(afterTuple, Has.All.Match(@"^disposed \S+ the lease on 203\.0\.113\.\d+ from server 203\.0\.113\.254 expired at "));
        Close(launched);
        var metrics = Close(tuple);
        Assert.That(metrics.GetValueOrDefault("sockshim.dhcp.renewals"), Is.GreaterThanOrEqualTo(2 * 3), "each lease renewed at least three times");
        Assert.That(metrics.GetValueOrDefault("sockshim.dhcp.expiries"), Is.EqualTo(2));
        Assert.That(metrics.GetValueOrDefault("sockshim.leases.live"), Is.Zero, "expired leases are no longer live");
    }

    /// <summary>A hostile server: noise, truncated and foreign replies before every answer, a NAK
    /// for each client's first REQUEST, a fifth of OFFERs and ACKs dropped. Every socket still
    /// gets its own lease, and the client never crashes.</summary>
    [Test]
    public void Naks_dropped_replies_and_malformed_or_foreign_packets_are_survived()
    {
        // Each socket waits out its NAK and any lost answer (a second or more): kept small.
        const int Sockets = 20;
        using var lan = new DhcpLan(clients: 1);
        var server = lan.Track(TwoHosts.StartIn(lan.Server, "SockShim.TestAgent", ["fake-dhcp-server", DhcpLan.Bridge, "192.0.2.254", "198.51.100.10", "20"], redirectInput: true));
        Assert.That(server.StandardOutput.ReadLine(), Is.EqualTo("serving"), () => server.StandardError.ReadToEnd());
        var echo = Echo(lan, 0);

        var env = lan.Pool();
        // Several lost answers in a row can each cost a doubling retransmission wait.
        env["SOCKSHIM_DHCPTIMEOUT"] = "40";
        var (agent, addresses) = HoldSockets(lan, lan.Clients[0], Sockets, env);
        Assert.That(addresses, Has.All.StartsWith("198.51.100.") & Is.Unique);
        var metrics = Close(agent);
        Assert.That(metrics.GetValueOrDefault("sockshim.dhcp.restarts"), Is.GreaterThanOrEqualTo(Sockets), "a restart per NAK");
        Assert.That(metrics.GetValueOrDefault("sockshim.dhcp.discarded"), Is.GreaterThanOrEqualTo(2 * Sockets * 4), "the junk and foreign replies dropped");
        Assert.That(metrics.GetValueOrDefault("sockshim.leases.acquired"), Is.EqualTo(Sockets));

        server.StandardInput.Close();
        Assert.That(server.WaitForExit(10_000), Is.True);
        var stats = Regex.Match(server.StandardOutput.ReadToEnd(), @"naks (\d+) dropped (\d+) junk (\d+) acks (\d+) releases (\d+)");
        Assert.That(stats.Success, Is.True);
        int Stat(int i) => int.Parse(stats.Groups[i].Value);
        Assert.Multiple(() =>
        {
            Assert.That(Stat(1), Is.GreaterThanOrEqualTo(Sockets), "every client was refused once");
            Assert.That(Stat(2), Is.GreaterThan(0), "replies were dropped");
            Assert.That(Stat(3), Is.GreaterThanOrEqualTo(3 * Sockets * 4), "junk before every answer");
            Assert.That(Stat(4), Is.EqualTo(Sockets), "one delivered ACK per socket");
            Assert.That(Stat(5), Is.EqualTo(Sockets), "each lease released on close");
        });
    }

    /// <summary>A holder killed with SIGKILL cannot release anything; the pool's table journals
    /// each lease (server, client identifier, expiry), so `sockshim gc` releases them at the
    /// server and takes the addresses off the interface. `status` shows the leases' expiry.</summary>
    [Test]
    public void Gc_releases_at_the_server_what_a_killed_process_held()
    {
        using var lan = new DhcpLan(clients: 1);
        lan.StartDnsmasq();
        string host = lan.Clients[0];
        var echo = Echo(lan, 0);
        var env = lan.Pool();
        var (agent, addresses) = HoldSockets(lan, host, 30, env);

        var (exit, status, _) = TwoHosts.RunIn(host, "SockShim.Interceptor", ["status", "--state-dir", lan.StateDirectory], env);
        Assert.That(exit, Is.Zero);
        var rows = status.Split('\n').Where(l => l.StartsWith("dhcp ")).ToList();
        Assert.That(rows, Has.Count.EqualTo(30));
        Assert.That(rows, Has.All.Match(@"netlink eth0 .* \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(in 1[01]\ds\) +live"), "each lease's expiry, two minutes out");

        agent.Kill(entireProcessTree: true);
        Assert.That(agent.WaitForExit(10_000), Is.True);
        Assert.That(lan.Leases(), Has.Count.EqualTo(30), "a killed process releases nothing");

        var (gcExit, gcOut, gcErr) = TwoHosts.RunIn(host, "SockShim.Interceptor", ["gc", "--state-dir", lan.StateDirectory], env);
        Assert.That(gcExit, Is.Zero, gcErr);
        Assert.That(gcOut, Does.Contain("30 table entries freed, 30 addresses removed"));
        Assert.That(DhcpLan.Eventually(() => lan.Leases().Count == 0, TimeSpan.FromSeconds(10)), Is.True, () => $"{lan.Leases().Count} leases left at the server");
        Assert.That(lan.AddressesOf(host), Is.EqualTo(new[] { "192.0.2.1" }));
    }

    /// <summary>RFC 5227 before use: with --dhcp-probe, a bound lease whose address another host
    /// of the link answers ARP for is declined at the server, and the socket gets another.</summary>
    [Test]
    public void A_leased_address_another_host_answers_for_is_declined_after_the_arp_probe()
    {
        using var lan = new DhcpLan(clients: 2);
        // Kea hands its pool out from the first address (dnsmasq would ping it first and skip it).
        lan.StartKea(valid: 120, renew: 60, rebind: 90);
        TwoHosts.Ip($"-n {lan.Clients[1]} addr add 203.0.113.10/32 dev {DhcpLan.ClientLink}");
        var echo = Echo(lan, 0);
        var env = lan.Pool();
        env["SOCKSHIM_DHCPPROBE"] = "300";
        var (agent, addresses) = HoldSockets(lan, lan.Clients[0], 3, env);
        Assert.That(addresses, Has.All.StartsWith("203.0.113.") & Is.Unique);
        Assert.That(addresses, Does.Not.Contain("203.0.113.10"), "the address in use on the other host was not used");
        // Kea's memfile: address, hwaddr, client_id, valid_lifetime, expire, subnet_id, fqdn_fwd, fqdn_rev, hostname, state (1: declined).
        var declined = File.ReadAllLines(lan.KeaLeaseFile).Skip(1).Select(l => l.Split(',')).Where(f => f.Length > 9 && f[0] == "203.0.113.10" && f[9] == "1");
        Assert.That(declined, Is.Not.Empty, () => $"Kea recorded the DECLINE of 203.0.113.10: {File.ReadAllText(lan.KeaLeaseFile)}");
        var metrics = Close(agent);
        Assert.That(metrics.GetValueOrDefault("sockshim.dhcp.restarts"), Is.GreaterThanOrEqualTo(1), "the declined acquisition started over");
        Assert.That(metrics.GetValueOrDefault("sockshim.leases.acquired"), Is.EqualTo(3));
        Assert.That(lan.AddressesOf(lan.Clients[1]), Does.Contain("203.0.113.10"), "the other host keeps its address");
    }

    /// <summary>The Berkeley API's TUPLE_DHCP: each descriptor's getsockname is its own lease;
    /// close gives the leases back at the server.</summary>
    [Test]
    public void Berkeley_tuple_dhcp_descriptors_hold_leases_until_close()
    {
        using var lan = new DhcpLan(clients: 1);
        lan.StartDnsmasq();
        var echo = Echo(lan, 0);
        var env = lan.Pool();
        env["SOCKSHIM_SOURCE"] = "dhcp";
        var agent = lan.Track(TwoHosts.StartIn(lan.Clients[0], "SockShim.TestAgent", ["berkeley-dhcp", "20", "192.0.2.254:7100"], env, redirectInput: true));
        var addresses = new List<string>();
        string? line;
        while ((line = agent.StandardOutput.ReadLine()) is not null && line != "held")
        {
            Assert.That(line, Does.StartWith("fd "), () => line + agent.StandardError.ReadToEnd());
            addresses.Add(line[3..]);
        }
        Assert.That(addresses, Has.Count.EqualTo(20));
        Assert.That(addresses, Is.Unique);
        Assert.That(lan.Leases().Select(l => l.Address), Is.EquivalentTo(addresses), "each descriptor's address is a lease of its own");
        agent.StandardInput.WriteLine("close");
        Assert.That(agent.StandardOutput.ReadLine(), Is.EqualTo("closed"));
        Assert.That(DhcpLan.Eventually(() => lan.Leases().Count == 0, TimeSpan.FromSeconds(10)), Is.True, "close released them at the server");
    }
}
