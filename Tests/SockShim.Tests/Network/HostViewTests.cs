namespace SockShim.Tests.Network;

/// <summary>
/// What the DHCP offer check reads of the host, read in a namespace made for the test and
/// compared with what `ip` says there: every gateway of the main table's routes (parsed from
/// /proc/net/route), and whether an address is the host's own (the kernel's route lookup).
/// </summary>
[NonParallelizable]
public class HostViewTests
{
    [Test]
    [CancelAfter(120_000)]
    public void The_offer_check_sees_every_route_gateway_and_the_hosts_own_addresses()
    {
        TwoHosts.RequireRoot();
        using var hosts = new TwoHosts();
        // Gateways on A's link: a default route and two more, one of them a host route.
        TwoHosts.Ip($"-n {hosts.A} route add default via 192.0.2.254");
        TwoHosts.Ip($"-n {hosts.A} route add 198.51.100.0/24 via 192.0.2.77");
        TwoHosts.Ip($"-n {hosts.A} route add 203.0.113.9/32 via 192.0.2.78");
        var expected = TwoHosts.Ip($"-n {hosts.A} -4 route show table main").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ')).Where(f => f.Contains("via")).Select(f => "gateway " + f[Array.IndexOf(f, "via") + 1]).Order().ToList();
        Assert.That(expected, Has.Count.EqualTo(3), "ip lists the three routes with a gateway");

        var (exit, output, error) = TwoHosts.RunIn(hosts.A, "SockShim.TestAgent", ["host-view", "192.0.2.1", "192.0.2.5", "198.51.100.7"], timeout: TimeSpan.FromSeconds(60));
        Assert.That(exit, Is.Zero, error);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).ToList();
        Assert.That(lines.Where(l => l.StartsWith("gateway ")), Is.EqualTo(expected), "every gateway ip lists, no other");
        Assert.That(lines.Where(l => l.StartsWith("local ")), Is.EqualTo(new[] { "local 192.0.2.1 true", "local 192.0.2.5 false", "local 198.51.100.7 false" }),
            "A's own address is local; a neighbour and an address behind a gateway are not");
    }

    [Test]
    [CancelAfter(120_000)]
    public void The_kept_gateway_view_follows_route_changes_and_reads_the_table_only_after_one()
    {
        TwoHosts.RequireRoot();
        using var hosts = new TwoHosts();
        TwoHosts.Ip($"-n {hosts.A} route add default via 192.0.2.254");
        var (exit, output, error) = TwoHosts.RunIn(hosts.A, "SockShim.TestAgent", ["gateway-watch", "192.0.2.77", "192.0.2.40", TwoHosts.LinkA, "192.0.2.78"], timeout: TimeSpan.FromSeconds(60));
        Assert.That(exit, Is.Zero, error);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Is.EqualTo(new[]
        {
            "first reads=0 gateways=192.0.2.254 reads=1",
            // Nothing changed: the kept view, no read.
            "again reads=1 gateways=192.0.2.254 reads=1",
            // A route through a new gateway: read again, and seen.
            "added reads=1 gateways=192.0.2.254,192.0.2.77 reads=2",
            // An address (its route is in the local table, never with a gateway): no read.
            "address reads=2 gateways=192.0.2.254,192.0.2.77 reads=2",
            "removed reads=2 gateways=192.0.2.254 reads=3",
            // 2,032 local-table notifications overflow the queue (ENOBUFS): read again, and the
            // queue drained, so the kernel delivers the next change instead of dropping it.
            "flooded reads=3 gateways=192.0.2.254 reads=4",
            "after reads=4 gateways=192.0.2.254,192.0.2.78 reads=5",
        }), "what the DHCP offer check sees, and when it read the route table");
    }
}
