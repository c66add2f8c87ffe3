namespace SockShim.Tests.Network;

/// <summary>Attack 7 of the trust model: the netlink provisioner never takes an address the host
/// already has, whatever its prefix or interface, seen in `ip addr` after the pool handed out
/// what it could.</summary>
[NonParallelizable]
public class ExistingAddressTests
{
    [Test]
    [CancelAfter(120_000)]
    public void An_address_the_host_has_under_another_prefix_or_interface_is_skipped()
    {
        TwoHosts.RequireRoot();
        using var space = new TestNamespace("sse");
        string ns = space.Name, state = space.StateDirectory;
        {
            TwoHosts.Ip($"-n {ns} link add v0 type veth peer name v1");
            TwoHosts.Ip($"-n {ns} link set v0 up");
            TwoHosts.Ip($"-n {ns} link set v1 up");
            TwoHosts.Ip($"-n {ns} addr add 192.0.2.9/24 dev v0");   // the pool's interface, another prefix
            TwoHosts.Ip($"-n {ns} addr add 192.0.2.10/24 dev v1");  // another interface
            var env = new Dictionary<string, string>
            {
                ["SOCKSHIM_POOL"] = "192.0.2.8-192.0.2.12", ["SOCKSHIM_PROVISIONER"] = "netlink", ["SOCKSHIM_INTERFACE"] = "v0",
                ["SOCKSHIM_STRATEGY"] = "sequential", ["SOCKSHIM_STATEDIR"] = state,
            };
            using var agent = TwoHosts.StartIn(ns, "SockShim.TestAgent", ["hold", "3"], env);
            var held = new List<string>();
            string? line;
            while ((line = Programs.Line(agent)) is not null && line != "held" && !line.StartsWith("error")) if (line.StartsWith("lease ")) held.Add(line[6..]);
            Assert.That(line, Is.EqualTo("held"), () => agent.StandardError.ReadToEnd());
            Assert.That(held, Is.EquivalentTo(new[] { "192.0.2.8", "192.0.2.11", "192.0.2.12" }), "the two addresses the host has are skipped");
            string addresses = TwoHosts.Ip($"-n {ns} -o -4 addr show");
            Assert.That(addresses, Does.Contain("192.0.2.9/24").And.Contain("192.0.2.10/24"), "left as they were");
            Assert.That(addresses, Does.Not.Contain("192.0.2.9/32").And.Not.Contain("192.0.2.10/32"), "never added a second time");
            foreach (var a in held) Assert.That(addresses, Does.Contain($"{a}/32"));
        }
    }

    /// <summary>Attack 7, deletes: a holder that died leaves its slot; meanwhile its address was
    /// taken over by hand (no SockShim mark). The next process reclaims the slot and removes only
    /// the dead holder's address that still carries the mark.</summary>
    [Test]
    [CancelAfter(120_000)]
    public void Reclaiming_a_dead_holder_removes_only_addresses_that_carry_the_mark()
    {
        TwoHosts.RequireRoot();
        using var space = new TestNamespace("ssm");
        string ns = space.Name;
        TwoHosts.Ip($"-n {ns} link add v0 type veth peer name v1");
        TwoHosts.Ip($"-n {ns} link set v0 up");
        TwoHosts.Ip($"-n {ns} link set v1 up");
        var env = new Dictionary<string, string>
        {
            ["SOCKSHIM_POOL"] = "192.0.2.20-192.0.2.22", ["SOCKSHIM_PROVISIONER"] = "netlink", ["SOCKSHIM_INTERFACE"] = "v0",
            ["SOCKSHIM_STRATEGY"] = "sequential", ["SOCKSHIM_STATEDIR"] = space.StateDirectory,
        };
        List<string> Hold(string count, out System.Diagnostics.Process agent)
        {
            agent = TwoHosts.StartIn(ns, "SockShim.TestAgent", ["hold", count], env);
            var held = new List<string>();
            string? line;
            while ((line = Programs.Line(agent)) is not null && line != "held" && !line.StartsWith("error")) if (line.StartsWith("lease ")) held.Add(line[6..]);
            var a = agent;
            Assert.That(line, Is.EqualTo("held"), () => a.StandardError.ReadToEnd());
            return held;
        }
        var first = Hold("2", out var dead);
        Assert.That(first, Is.EqualTo(new[] { "192.0.2.20", "192.0.2.21" }));
        dead.Kill();
        Assert.That(dead.WaitForExit(10_000), Is.True);
        dead.Dispose();
        // Someone takes .20 over by hand: the same /32, without the mark.
        TwoHosts.Ip($"-n {ns} addr del 192.0.2.20/32 dev v0");
        TwoHosts.Ip($"-n {ns} addr add 192.0.2.20/32 dev v0");

        var second = Hold("1", out var next);
        using (next)
        {
            string v0 = TwoHosts.Ip($"-n {ns} -o -4 addr show dev v0");
            Assert.That(v0, Does.Contain("192.0.2.20/32"), "the address taken over by hand stays");
            Assert.That(second, Is.EqualTo(new[] { "192.0.2.21" }), "the dead holder's marked .21 was removed and handed out again; .20 is the host's now");
            Assert.That(v0.Split('\n').Count(l => l.Contains("192.0.2.21/32")), Is.EqualTo(1));
        }
    }
}
