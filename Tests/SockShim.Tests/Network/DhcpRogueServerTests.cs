using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;

namespace SockShim.Tests.Network;

/// <summary>
/// A rogue DHCP server on the LAN answers every DISCOVER first with one bad address while Kea
/// serves too. The witnesses are outside the app: `ip monitor address` and `ip addr` on the
/// client host, the rogue's own count of what it offered and ACKed, and the address the socket
/// ends up with.
/// </summary>
[NonParallelizable]
public class DhcpRogueServerTests
{
    private const string RogueId = "198.51.100.253", HostOwn = "192.0.2.1";

    [SetUp]
    public void Root() => TwoHosts.RequireRoot();

    // name, offered address, mask, router (option 3), the reason the client must count
    private static readonly (string Name, string Offer, string Mask, string Router, string Reason)[] BadOffers =
    [
        ("the router's address", "198.51.100.1", "255.255.255.0", "198.51.100.1", "router"),
        ("the client host's own address", HostOwn, "255.255.255.0", "198.51.100.1", "host-address"),
        ("an address outside the pool", "192.0.2.77", "255.255.255.0", "198.51.100.1", "outside-pool"),
        ("the rogue server's own address", RogueId, "255.255.255.0", "198.51.100.1", "server"),
        ("the network address of its /26", "198.51.100.64", "255.255.255.192", "198.51.100.1", "network-address"),
        ("the broadcast address of its /26", "198.51.100.127", "255.255.255.192", "198.51.100.1", "broadcast-address"),
    ];

    /// <summary>For each bad offer in turn: the socket gets Kea's address, the bad one never
    /// appears on eth0 (`ip monitor address` over the whole test, `ip addr` while the socket
    /// holds its lease and after), the rogue is never sent a REQUEST, and the refusal is counted
    /// by its reason. Then with Kea gone the rogue alone leaves the socket with an error that
    /// names the refused offer.</summary>
    [Test]
    [CancelAfter(240_000)]
    public void A_rogue_answering_first_never_gets_a_bad_address_onto_the_interface()
    {
        using var lan = new DhcpLan(clients: 2);
        string host = lan.Clients[0], rogueHost = lan.Clients[1];
        // The rogue's own address is in the pool, so only the server rule can refuse it.
        TwoHosts.Ip($"-n {rogueHost} addr add {RogueId}/24 dev {DhcpLan.ClientLink}");
        var kea = lan.StartKea(valid: 120, renew: 60, rebind: 90);
        var echo = DhcpTests.Echo(lan, 0);
        var env = lan.Pool();
        // No 192.0.2.0/24 in the pool: the client host's own subnet is outside it.
        env["SOCKSHIM_POOL"] = "198.51.100.0/24,203.0.113.0/24";
        env.Remove("SOCKSHIM_EXCLUDE");

        var monitor = lan.Track(DhcpLan.StartProcess("ip", ["-n", host, "-o", "monitor", "address"]));
        var monitored = new ConcurrentQueue<string>();
        var monitorDone = Task.Run(() => { string? l; while ((l = monitor.StandardOutput.ReadLine()) is not null) monitored.Enqueue(l); });

        var got = new List<string>();
        foreach (var (name, offer, mask, router, reason) in BadOffers)
        {
            var rogue = StartRogue(lan, rogueHost, offer, mask, router);
            // Kea is stopped until the rogue has answered, so the rogue's offer surely comes
            // first; Kea then answers the DISCOVERs queued meanwhile (retransmissions keep the xid).
            TwoHosts.Run("kill", ["-STOP", kea.Id.ToString()]);
            var resume = Task.Run(() =>
            {
                try { return DhcpLan.Eventually(() => rogue.Lines.Any(l => l.StartsWith("offered ")), TimeSpan.FromSeconds(30)); }
                finally { TwoHosts.Run("kill", ["-CONT", kea.Id.ToString()]); }
            });
            var (agent, addresses) = DhcpTests.HoldSockets(lan, host, 1, env);
            Assert.That(resume.Wait(35_000) && resume.Result, Is.True, $"{name}: the rogue answered while Kea was stopped");
            var onLink = lan.AddressesOf(host);
            var metrics = DhcpTests.Close(agent);
            string refusals = agent.StandardError.ReadToEnd();
            var (offers, acks, log) = StopRogue(rogue);
            Assert.Multiple(() =>
            {
                Assert.That(addresses.Single(), Does.StartWith("203.0.113."), $"{name}: the socket got Kea's address");
                Assert.That(onLink, Does.Contain(addresses.Single()), $"{name}: `ip addr` while the socket holds its lease");
                // The host's own address stays as the host put it: neither added again nor
                // taken away when the socket closes (`ip monitor` below sees no change of it).
                Assert.That(onLink.Count(a => a == offer), Is.EqualTo(offer == HostOwn ? 1 : 0), $"{name}: `ip addr` while the socket holds its lease");
                Assert.That(lan.AddressesOf(host), Is.EqualTo(new[] { "192.0.2.1" }), $"{name}: `ip addr` after the socket closed: the host's own address alone");
                Assert.That(offers, Is.GreaterThanOrEqualTo(1), $"{name}: the rogue offered {offer}: {log}");
                Assert.That(acks, Is.Zero, $"{name}: no REQUEST ever named the rogue: {log}");
                Assert.That(metrics.GetValueOrDefault("sockshim.dhcp.declined"), Is.GreaterThanOrEqualTo(1), $"{name}: the refusal was counted");
                // By the rule that should refuse it, not another one that happens to (the host's own
                // address here is also outside the pool: only a working read of the host's addresses
                // names it as the host's).
                Assert.That(refusals, Does.Match($@"refusing the offer of {Regex.Escape(offer)} from .* \(reason {reason}\)"), $"{name}: refused as {reason}");
            });
            TestContext.Out.WriteLine($"{name}: socket {addresses.Single()}, rogue offered {offers}, declined {metrics.GetValueOrDefault("sockshim.dhcp.declined")}");
            got.Add(addresses.Single());
        }

        // The rogue alone: no good offer comes, and the socket's error says what was refused.
        kea.Kill(entireProcessTree: true);
        Assert.That(kea.WaitForExit(10_000), Is.True, "Kea stopped");
        var alone = StartRogue(lan, rogueHost, "198.51.100.1", "255.255.255.0", "198.51.100.1");
        env["SOCKSHIM_DHCPTIMEOUT"] = "4";
        var lone = lan.Track(TwoHosts.StartIn(host, "SockShim.TestAgent", ["sockets", "1", "192.0.2.254:7100", "tcp"], env, redirectInput: true));
        var stderr = lone.StandardError.ReadToEndAsync();
        string line = lone.StandardOutput.ReadLine() ?? "";
        Assert.That(lone.WaitForExit(30_000), Is.True, "the agent gave up within its acquisition time");
        var (aloneOffers, aloneAcks, aloneLog) = StopRogue(alone);
        TestContext.Out.WriteLine($"rogue alone: {line}");
        Assert.Multiple(() =>
        {
            Assert.That(lone.ExitCode, Is.EqualTo(1), "the socket could not be created");
            Assert.That(line, Does.StartWith("error ").And.Contain("no DHCPOFFER within 4 s").And.Match(@"\d+ offers? (was|were) refused, the last: 198\.51\.100\.1 from server 198\.51\.100\.253: .*router"),
                "the error names the refused offer and why");
            Assert.That(stderr.Result, Does.Contain("refusing the offer of 198.51.100.1"), "each refusal is logged");
            Assert.That(aloneOffers, Is.GreaterThanOrEqualTo(2), $"the rogue offered on each DISCOVER: {aloneLog}");
            Assert.That(aloneAcks, Is.Zero, $"and was never asked for it: {aloneLog}");
            Assert.That(lan.AddressesOf(host), Is.EqualTo(new[] { "192.0.2.1" }), "`ip addr` after the rogue alone");
        });

        // `ip monitor` saw every good address come and go, and none of the bad ones ever.
        monitor.Kill();
        Assert.That(monitorDone.Wait(10_000), Is.True);
        string events = string.Join("\n", monitored);
        foreach (var good in got) Assert.That(events, Does.Match($@"(?m)^\d+: {DhcpLan.ClientLink} +inet {Regex.Escape(good)}/"), $"the monitor saw {good} added: {events}");
        foreach (var (name, offer, _, _, _) in BadOffers)
            Assert.That(events, Does.Not.Match($@"inet {Regex.Escape(offer)}/"), $"{name} ({offer}) was never added to or removed from {DhcpLan.ClientLink}: {events}");
    }

    private sealed record Rogue(Process Process, ConcurrentQueue<string> Lines, Task Reader);

    private static Rogue StartRogue(DhcpLan lan, string ns, string offer, string mask, string router)
    {
        var p = lan.Track(TwoHosts.StartIn(ns, "SockShim.TestAgent", ["rogue-dhcp-server", DhcpLan.ClientLink, RogueId, offer, mask, router], redirectInput: true));
        Assert.That(Programs.Line(p), Is.EqualTo("serving"), () => p.StandardError.ReadToEnd());
        var lines = new ConcurrentQueue<string>();
        var reader = Task.Run(() => { string? l; while ((l = p.StandardOutput.ReadLine()) is not null) lines.Enqueue(l); });
        return new Rogue(p, lines, reader);
    }

    private static (int Offers, int Acks, string Log) StopRogue(Rogue rogue)
    {
        rogue.Process.StandardInput.Close();
        Assert.That(rogue.Process.WaitForExit(10_000) && rogue.Reader.Wait(10_000), Is.True, "the rogue stopped");
        string log = string.Join("\n", rogue.Lines);
        var m = Regex.Match(log, @"(?m)^offers (\d+) acks (\d+)$");
        Assert.That(m.Success, Is.True, log);
        return (int.Parse(m.Groups[1].Value), int.Parse(m.Groups[2].Value), log);
    }
}
