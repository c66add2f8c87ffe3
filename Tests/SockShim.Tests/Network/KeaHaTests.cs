using System.Diagnostics;

namespace SockShim.Tests.Network;

/// <summary>
/// A fleet: several hosts of one LAN with the same DHCP pool, and a Kea High Availability pair
/// (<see cref="KeaPair"/>) as the allocator. The witnesses are each host's `ip addr`, both
/// servers' lease state (lease4-get-all; the memfile of a stopped one) and the sockets' own use.
/// </summary>
[NonParallelizable]
public class KeaHaTests
{
    private const int Hosts = 4, Each = 150, More = 20, Valid = 20;

    [SetUp]
    public void Root() => TwoHosts.RequireRoot();

    /// <summary>Four hosts x 150 sockets against a hot-standby pair with 20-second leases; the
    /// primary is killed with SIGKILL while they hold them. Renewals (unicast to the primary) go
    /// unanswered, rebinding (broadcast, at T2) reaches the standby, which has every lease from
    /// the primary's lease updates and has gone partner-down: the sockets keep their addresses,
    /// new sockets lease from the standby, and the releases at close go to it.</summary>
    [Test]
    [CancelAfter(360_000)]
    public void Four_hosts_keep_600_distinct_leases_through_a_hot_standby_pair_whose_primary_dies()
    {
        using var lan = new DhcpLan(clients: Hosts);
        var pair = new KeaPair(lan, "hot-standby", valid: Valid, renew: 10, rebind: 15);
        pair.StartBoth();
        DhcpTests.Echo(lan, 0);
        var macs = lan.Clients.ToDictionary(h => h, lan.MacOf);

        // All four hosts acquire at once.
        var clock = Stopwatch.StartNew();
        var first = lan.Clients.Select(h => Task.Run(() => DhcpTests.HoldSockets(lan, h, Each, FleetPool(lan)))).ToArray();
        var agents = first.Select(t => t.Result.Agent).ToList();
        var held = lan.Clients.Select((h, i) => (Host: h, Addresses: first[i].Result.Addresses)).ToDictionary(x => x.Host, x => x.Addresses);
        TestContext.Out.WriteLine($"{Hosts} x {Each} sockets held in {clock.Elapsed.TotalSeconds:F1} s");
        AssertOneHostPerAddress(lan, pair, held, macs, servers: [0, 1], Hosts * Each);

        // Mid-run: every lease renewed once at the primary (T1, 10 s), which sent each renewal
        // on to the standby; then the primary dies, and the standby notices (no heartbeat answer
        // for 2 s) and serves alone.
        var all = held.Values.SelectMany(a => a).ToList();
        long heldAt = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        AwaitRenewed(pair, 0, all, after: heldAt, seconds: 25, "at the primary");
        var killedAt = DateTimeOffset.UtcNow;
        pair.Kill(0);
        pair.AwaitState(1, "partner-down", seconds: 15);
        TestContext.Out.WriteLine($"standby partner-down {(DateTimeOffset.UtcNow - killedAt).TotalSeconds:F1} s after the kill");

        // Every lease renewed at the standby: its lease state shows a transaction after the kill
        // (T2 is 15 s after the last renewal at the primary, so within 15 s and retransmissions).
        AwaitRenewed(pair, 1, all, after: killedAt.ToUnixTimeSeconds(), seconds: 40, "at the standby");

        // Past a whole lifetime since the kill: any lease only the primary had extended would be
        // gone from its interface by now (the kernel drops it at the lease's end). The condition
        // is the time itself, so this waits for it.
        var lifetimeAfterKill = killedAt + TimeSpan.FromSeconds(Valid + 1);
        if (lifetimeAfterKill > DateTimeOffset.UtcNow) Thread.Sleep(lifetimeAfterKill - DateTimeOffset.UtcNow);
        for (int i = 0; i < Hosts; i++)
        {
            var used = DhcpTests.Use(agents[i]);
            Assert.That(used, Is.EquivalentTo(held[lan.Clients[i]].Select(a => $"ok {a}")), $"{lan.Clients[i]}: every socket still sends from its own address");
        }
        AssertOneHostPerAddress(lan, pair, held, macs, servers: [1], Hosts * Each);

        // A holder killed with SIGKILL releases nothing; `sockshim gc` releases its leases where
        // the journal says they are held: at the standby, which took them over by rebinding.
        string lastHost = lan.Clients[^1];
        agents[Hosts - 1].Kill(entireProcessTree: true);
        Assert.That(agents[Hosts - 1].WaitForExit(10_000), Is.True);
        var (gcExit, gcOut, gcErr) = TwoHosts.RunIn(lastHost, "SockShim.Interceptor", ["gc", "--state-dir", lan.StateDirectory], FleetPool(lan));
        Assert.That(gcExit, Is.Zero, gcErr);
        Assert.That(gcOut, Does.Contain($"{Each} table entries freed, {Each} addresses removed"));
        var killed = held[lastHost];
        AwaitReleased(pair, killed, "the killed holder's leases, by gc");
        Assert.That(lan.AddressesOf(lastHost), Is.EqualTo(new[] { $"192.0.2.{Hosts}" }));
        var gone = killed.ToList();
        held[lastHost] = new List<string>();
        agents.RemoveAt(Hosts - 1);

        // New sockets lease from the standby alone, none of them an address already held.
        var second = lan.Clients.Select(h => Task.Run(() => DhcpTests.HoldSockets(lan, h, More, FleetPool(lan)))).ToArray();
        agents.AddRange(second.Select(t => t.Result.Agent));
        for (int i = 0; i < Hosts; i++) held[lan.Clients[i]].AddRange(second[i].Result.Addresses);
        AssertOneHostPerAddress(lan, pair, held, macs, servers: [1], (Hosts - 1) * Each + Hosts * More);

        // Close: each lease released to the server it is bound to, the standby for all of them.
        all = held.Values.SelectMany(a => a).ToList();
        var renewals = agents.Take(Hosts - 1).Sum(a => DhcpTests.Close(a).GetValueOrDefault("sockshim.dhcp.renewals"));
        foreach (var agent in agents.Skip(Hosts - 1)) DhcpTests.Close(agent);
        Assert.That(renewals, Is.GreaterThanOrEqualTo(2 * (Hosts - 1) * Each), "each first socket's lease renewed twice or more (at the primary, then the standby)");
        all.AddRange(gone);
        AwaitReleased(pair, all, "the closed sockets' leases");
        foreach (var host in lan.Clients)
            Assert.That(lan.AddressesOf(host), Is.EqualTo(new[] { $"192.0.2.{lan.Clients.ToList().IndexOf(host) + 1}" }), $"{host}: only its own address is left");

        // The primary's memfile kept what it had leased across its death (persist) ...
        var kept = pair.FileLeases(0).Where(l => l.Valid > 0).Select(l => l.Address).ToHashSet();
        var madeByPrimary = held.Values.SelectMany(a => a.Take(a.Count - More)).Concat(gone).ToList();
        Assert.That(madeByPrimary, Has.Count.EqualTo(Hosts * Each));
        Assert.That(kept, Is.SupersetOf(madeByPrimary), "the dead primary's memfile holds the leases it made");
        Assert.That(Live(pair.FileLeases(0)).Select(l => l.Address).Intersect(all), Is.Empty, "none of them is still live in it");
        // ... and restarted from it, it takes the standby's state (sync) and holds none of them live.
        pair.Start(0);
        pair.AwaitState(0, "hot-standby", seconds: 30);
        pair.AwaitState(1, "hot-standby", seconds: 10);
        Assert.That(Live(pair.Leases(0)).Select(l => l.Address).Intersect(all), Is.Empty, "the restarted primary holds none of the closed sockets' leases");
    }

    /// <summary>Waits until server <paramref name="server"/>'s lease state shows a transaction on
    /// every one of <paramref name="addresses"/> after Unix second <paramref name="after"/>.</summary>
    private static void AwaitRenewed(KeaPair pair, int server, List<string> addresses, long after, int seconds, string where)
    {
        var clock = Stopwatch.StartNew();
        List<string> stale = addresses;
        Assert.That(DhcpLan.Eventually(() =>
        {
            var renewed = pair.Leases(server).Where(l => l.Cltt > after).Select(l => l.Address).ToHashSet();
            stale = addresses.Where(a => !renewed.Contains(a)).ToList();
            return stale.Count == 0;
        }, TimeSpan.FromSeconds(seconds)), Is.True, () => $"{stale.Count} leases not renewed {where}, e.g. {string.Join(" ", stale.Take(5))}; its log:\n{pair.LogTail(server)}");
        TestContext.Out.WriteLine($"all {addresses.Count} leases renewed {where} within {clock.Elapsed.TotalSeconds:F1} s");
    }

    /// <summary>The standby released each of <paramref name="addresses"/> (its log says so; an
    /// expiry would not) and holds none of them live.</summary>
    private static void AwaitReleased(KeaPair pair, List<string> addresses, string what)
    {
        List<string> left = addresses;
        Assert.That(DhcpLan.Eventually(() =>
        {
            var released = pair.Released(1);
            var live = Live(pair.Leases(1)).Select(l => l.Address).ToHashSet();
            left = addresses.Where(a => !released.Contains(a) || live.Contains(a)).ToList();
            return left.Count == 0;
        }, TimeSpan.FromSeconds(10)), Is.True, () => $"{left.Count} of {what} not released at the standby, e.g. {string.Join(" ", left.Take(5))}");
    }

    /// <summary>The hosts' pool: the LAN's DHCP pool, announcing each address it adds. In a fleet
    /// an address moves between hosts (one releases it, the server leases it to another), and a
    /// neighbour that talked to the first still has its MAC cached: without the gratuitous ARP,
    /// the new holder's first connection waits out that entry (seen: 11 s per socket).</summary>
    private static Dictionary<string, string> FleetPool(DhcpLan lan)
    {
        var env = lan.Pool();
        env["SOCKSHIM_ANNOUNCE"] = "true";
        return env;
    }

    private static IEnumerable<KeaLease> Live(List<KeaLease> leases)
    {
        var now = DateTimeOffset.UtcNow;
        return leases.Where(l => l.LiveAt(now));
    }

    /// <summary>No address on two hosts' interfaces; each host's sockets' addresses on its own; and
    /// in each running server's lease state, every held address bound once, to that host's MAC,
    /// for a client identifier of its own.</summary>
    private static void AssertOneHostPerAddress(DhcpLan lan, KeaPair pair, Dictionary<string, List<string>> held, Dictionary<string, string> macs, int[] servers, int expected)
    {
        var all = held.Values.SelectMany(a => a).ToList();
        Assert.That(all, Has.Count.EqualTo(expected).And.Unique, "distinct leases");
        var onLink = lan.Clients.ToDictionary(h => h, lan.AddressesOf);
        foreach (var host in lan.Clients)
        {
            Assert.That(onLink[host], Is.SupersetOf(held[host]), $"{host}: every socket's address is on its eth0");
            foreach (var other in lan.Clients.Where(o => string.CompareOrdinal(o, host) > 0))
                Assert.That(onLink[host].Intersect(onLink[other]), Is.Empty, $"no address on both {host} and {other}");
        }
        foreach (int s in servers)
        {
            var live = Live(pair.Leases(s)).ToList();
            Assert.That(live.Select(l => l.Address), Is.Unique, $"server{s + 1}: one lease per address");
            Assert.That(live.Select(l => l.ClientId), Is.Unique, $"server{s + 1}: one lease per client identifier");
            var byAddress = live.ToDictionary(l => l.Address);
            foreach (var (host, addresses) in held)
                foreach (var a in addresses)
                {
                    Assert.That(byAddress.TryGetValue(a, out var lease), Is.True, () => $"server{s + 1} holds a live lease on {a} ({host}); it holds {live.Count}");
                    Assert.That(lease.Mac, Is.EqualTo(macs[host]), $"server{s + 1}: {a} is leased to {host}'s MAC");
                }
        }
    }
}
