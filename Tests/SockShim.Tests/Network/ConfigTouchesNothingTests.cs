using System.Diagnostics;
using System.Text.RegularExpressions;

namespace SockShim.Tests.Network;

/// <summary>
/// `sockshim config` checks a configuration and changes nothing on the host, even for pools whose
/// stack would change it (an AnyIP pool that may add its route, a DHCP pool that prefetches
/// leases); seen from outside: the routing tables, the interface's addresses, the state
/// directory, the DHCP server's lease file and the wire. Each test then builds the real stack
/// from the same settings and sees the change happen, so the check could fail.
/// </summary>
[NonParallelizable]
public class ConfigTouchesNothingTests
{
    [Test]
    [CancelAfter(120_000)]
    public void Config_of_an_anyip_pool_that_may_add_its_route_adds_no_route()
    {
        TwoHosts.RequireRoot();
        using var space = new TestNamespace("ssc");
        string ns = space.Name, state = space.StateDirectory;
        {
            string Routes() => TwoHosts.Ip($"-n {ns} route show table all") + TwoHosts.Ip($"-n {ns} -6 route show table all");
            string before = Routes();
            Assert.That(before, Does.Not.Contain("203.0.113.0/24"));
            var env = new Dictionary<string, string> { ["SOCKSHIM_STATEDIR"] = state };
            string[] pool = ["--provisioner", "anyip", "--pool", "203.0.113.0/24", "--anyip-add-route", "true"];

            var (exit, output, error) = TwoHosts.RunIn(ns, "SockShim.Interceptor", ["config", .. pool], env);
            Assert.That(exit, Is.Zero, output + error);
            Assert.That(output, Does.Contain("203.0.113.0/24").And.Contain("anyip (adds its local route)"));
            var (checkExit, checkOutput, checkError) = TwoHosts.RunIn(ns, "SockShim.Interceptor", ["config", "--check-host", .. pool], env);
            Assert.That(checkExit, Is.Zero, checkOutput + checkError);
            Assert.That(checkOutput, Does.Contain("every pool can be served here"));
            Assert.That(Routes(), Is.EqualTo(before), "config and config --check-host changed no route");
            Assert.That(Directory.Exists(state), Is.False, "config made no state directory");

            // Without permission to add the route, the host check says what is missing and how to fix it.
            var (noRouteExit, _, noRoute) = TwoHosts.RunIn(ns, "SockShim.Interceptor", ["config", "--check-host", "--provisioner", "anyip", "--pool", "203.0.113.0/24"], env);
            Assert.That(noRouteExit, Is.EqualTo(2));
            Assert.That(noRoute, Does.Contain("--pool = '203.0.113.0/24'").And.Contain("not routed to this host").And.Contain("ip route add local 203.0.113.0/24 dev lo"));

            // The stack itself adds it: a process that takes one address from the pool.
            using var agent = TwoHosts.StartIn(ns, "SockShim.TestAgent", ["hold", "1"], new Dictionary<string, string>(env)
            {
                ["SOCKSHIM_PROVISIONER"] = "anyip", ["SOCKSHIM_POOL"] = "203.0.113.0/24", ["SOCKSHIM_ANYIPADDROUTE"] = "true",
            });
            Assert.That(Programs.Line(agent), Does.StartWith("lease 203.0.113."), () => agent.StandardError.ReadToEnd());
            Assert.That(Routes(), Does.Contain("local 203.0.113.0/24"), "the stack added the route config left alone");
            agent.Kill();
        }
    }

    [Test]
    [CancelAfter(180_000)]
    public void Config_of_a_dhcp_pool_with_prefetch_leases_nothing()
    {
        TwoHosts.RequireRoot();
        using var lan = new DhcpLan(clients: 1);
        lan.StartDnsmasq();
        string host = lan.Clients[0];
        var env = lan.Pool(prefetch: 4);
        Process Capture()
        {
            var probe = lan.Track(TwoHosts.StartIn(lan.Server, "SockShim.PcapProbe", [DhcpLan.Bridge, "udp dst port 67", "120"], redirectInput: true));
            Assert.That(Programs.Line(probe), Is.EqualTo("ready"), () => probe.StandardError.ReadToEnd());
            return probe;
        }
        int DhcpPackets(Process probe)
        {
            var seen = probe.StandardOutput.ReadToEndAsync();
            probe.StandardInput.Close();
            Assert.That(probe.WaitForExit(30_000), Is.True);
            return Regex.Matches(seen.Result, @"^udp \S+ \S+ dscp", RegexOptions.Multiline).Count;
        }
        var addressesBefore = lan.AddressesOf(host);
        string leasesBefore = File.Exists(lan.LeaseFile) ? File.ReadAllText(lan.LeaseFile) : "";

        var duringConfig = Capture();
        foreach (var args in new[] { new[] { "config" }, ["config", "--check-host"] })
        {
            var (exit, output, error) = TwoHosts.RunIn(host, "SockShim.Interceptor", args, env);
            Assert.That(exit, Is.Zero, output + error);
            Assert.That(output, Does.Contain("source dhcp").And.Contain("prefetch 4"));
        }
        Assert.That(DhcpPackets(duringConfig), Is.Zero, "config sent nothing to the DHCP server");
        Assert.That(lan.AddressesOf(host), Is.EqualTo(addressesBefore), "no address was added to the interface");
        Assert.That(Directory.Exists(lan.StateDirectory), Is.False, "no state directory was made");
        Assert.That(File.Exists(lan.LeaseFile) ? File.ReadAllText(lan.LeaseFile) : "", Is.EqualTo(leasesBefore), "the server's lease file is as it was");

        // The stack with the same settings prefetches: DHCP on the wire, leases at the server.
        var duringStack = Capture();
        using var agent = lan.Track(TwoHosts.StartIn(host, "SockShim.TestAgent", ["hold", "1"], env));
        Assert.That(Programs.Line(agent), Does.StartWith("lease "), () => agent.StandardError.ReadToEnd());
        Assert.That(DhcpLan.Eventually(() => lan.Leases().Count == 5, TimeSpan.FromSeconds(30)), Is.True, "one lease for the socket and four prefetched");
        agent.Kill();
        int packets = DhcpPackets(duringStack);
        Assert.That(packets, Is.GreaterThanOrEqualTo(10), "the capture saw the stack's DISCOVERs and REQUESTs (and so would have seen config's)");
    }
}
