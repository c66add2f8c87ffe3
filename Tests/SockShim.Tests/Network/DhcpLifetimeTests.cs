using System.Diagnostics;
using System.Text.RegularExpressions;

namespace SockShim.Tests.Network;

/// <summary>
/// The kernel expires what the server will: a leased address goes on the interface with the
/// lease's remaining time as its lifetime, refreshed at each renewal, so the addresses of a
/// holder killed with SIGKILL leave the interface when their leases end, with no gc. The
/// witness is `ip addr` in the client host's namespace, against Kea with 10-second leases.
/// </summary>
[NonParallelizable]
public class DhcpLifetimeTests
{
    private const int Leases = 5, LeaseSeconds = 10;

    [SetUp]
    public void Root() => TwoHosts.RequireRoot();

    [Test]
    [CancelAfter(180_000)]
    public void A_killed_holders_addresses_show_their_lease_time_and_leave_the_interface_when_the_leases_end()
    {
        using var lan = new DhcpLan(clients: 1);
        lan.StartKea(valid: LeaseSeconds, renew: 4, rebind: 8);
        string host = lan.Clients[0];
        var agent = lan.Track(TwoHosts.StartIn(host, "SockShim.TestAgent", ["hold", Leases.ToString()], lan.Pool()));
        var held = new List<string>();
        string? line;
        while ((line = Programs.Line(agent)) is not null && line != "held" && !line.StartsWith("error")) if (line.StartsWith("lease ")) held.Add(line[6..]);
        Assert.That(line, Is.EqualTo("held"), () => $"{line} {agent.StandardError.ReadToEnd()}\nserver log:\n{lan.ServerLogTail()}");
        Assert.That(held, Has.Count.EqualTo(Leases).And.Unique.And.All.StartsWith("203.0.113."), "each lease from Kea");

        // While the holder lives: each address counts down from at most the lease time, never "forever".
        var first = Lifetimes(host);
        TestContext.Out.WriteLine($"after the leases were taken:\n{string.Join("\n", held.Select(a => $"  {a} {Describe(first.GetValueOrDefault(a))}"))}");
        foreach (var address in held)
        {
            Assert.That(first, Does.ContainKey(address), $"{address} is on {DhcpLan.ClientLink}");
            Assert.That(first[address].Valid, Is.Not.Null.And.InRange(1, LeaseSeconds), $"{address}: {Describe(first[address])}");
            Assert.That(first[address].Preferred, Is.EqualTo(first[address].Valid), $"{address}: preferred_lft equals valid_lft");
        }

        // A renewal (T1 = 4 s) sets each lifetime again: seen going back up after counting down.
        var lowest = held.ToDictionary(a => a, a => first[a].Valid!.Value);
        var refreshed = new HashSet<string>();
        Assert.That(DhcpLan.Eventually(() =>
        {
            var now = Lifetimes(host);
            foreach (var address in held)
            {
                if (now.GetValueOrDefault(address).Valid is not { } valid) continue;
                if (valid > lowest[address]) refreshed.Add(address);
                lowest[address] = Math.Min(lowest[address], valid);
            }
            return refreshed.Count == held.Count;
        }, TimeSpan.FromSeconds(2 * LeaseSeconds)), Is.True,
            () => $"each address's lifetime went back up at a renewal; refreshed: {string.Join(" ", refreshed)}; now: {TwoHosts.Ip($"-n {host} -o -4 addr show dev {DhcpLan.ClientLink}")}");
        var rows = lan.KeaRows();
        foreach (var address in held)
            Assert.That(rows.Count(r => r.Address == address && r.Lifetime > 0), Is.GreaterThanOrEqualTo(2), $"Kea renewed {address}");
        var beforeKill = Lifetimes(host);
        Assert.That(held.Select(a => beforeKill.GetValueOrDefault(a).Valid), Has.All.InRange(1, LeaseSeconds), "still counting down from at most the lease time");

        // SIGKILL: nothing of the holder runs again, and no gc is run.
        agent.Kill();
        Assert.That(agent.WaitForExit(10_000), Is.True);
        var killed = Stopwatch.StartNew();
        Assert.That(lan.AddressesOf(host), Is.SupersetOf(held), "a killed holder removes nothing itself");

        // The server may lease each address again once its lease ends, at most LeaseSeconds after
        // the last renewal; the kernel's lifetime check runs about once a second.
        Assert.That(DhcpLan.Eventually(() => !lan.AddressesOf(host).Intersect(held).Any(), TimeSpan.FromSeconds(LeaseSeconds + 4)), Is.True,
            () => $"the leased addresses left {DhcpLan.ClientLink} when their leases ended: {TwoHosts.Ip($"-n {host} -o -4 addr show dev {DhcpLan.ClientLink}")}");
        TestContext.Out.WriteLine($"all {held.Count} addresses gone {killed.Elapsed.TotalSeconds:F1} s after the SIGKILL (lease {LeaseSeconds} s)");
        Assert.That(lan.AddressesOf(host), Is.EqualTo(new[] { "192.0.2.1" }), "only the host's own address is left");
        Assert.That(TwoHosts.Ip($"-n {host} -o -4 addr show dev {DhcpLan.ClientLink}"), Does.Contain("192.0.2.1/24").And.Contain("valid_lft forever"),
            "the host's own address is untouched");
    }

    /// <summary>Each IPv4 address on the client's eth0 with its valid and preferred lifetimes in
    /// seconds (null: "forever").</summary>
    private static Dictionary<string, (int? Valid, int? Preferred)> Lifetimes(string ns) =>
        Regex.Matches(TwoHosts.Ip($"-n {ns} -o -4 addr show dev {DhcpLan.ClientLink}"), @"inet (\S+)/\d+ .*?valid_lft (\S+) preferred_lft (\S+)")
            .ToDictionary(m => m.Groups[1].Value, m => (Seconds(m.Groups[2].Value), Seconds(m.Groups[3].Value)));

    private static string Describe((int? Valid, int? Preferred) l) => $"valid_lft {l.Valid?.ToString() ?? "forever"} preferred_lft {l.Preferred?.ToString() ?? "forever"}";

    private static int? Seconds(string lifetime) => lifetime == "forever" ? null : int.Parse(lifetime.TrimEnd('s', 'e', 'c'));
}
