namespace SockShim.Tests.Network;

/// <summary>The netlink provisioner's IPv6 add and remove seen from outside, one address at a
/// time: on the interface with its local route when the acquire returns (the add asks for the
/// route in its own system call), off it when the release returns (the remove is not
/// acknowledged), and a remove the kernel refused does not disturb the requests after it (its
/// error, which comes unasked for, is not taken for the answer to the next question).</summary>
[NonParallelizable]
public class NetlinkReleaseTests
{
    [Test]
    [CancelAfter(120_000)]
    public void Each_ipv6_address_is_usable_when_acquired_and_gone_when_released_also_after_a_refused_remove()
    {
        TwoHosts.RequireRoot();
        using var space = new TestNamespace("ssr");
        string ns = space.Name;
        TwoHosts.Ip($"-n {ns} link add v0 type veth peer name v1");
        TwoHosts.Ip($"-n {ns} link set v0 up");
        TwoHosts.Ip($"-n {ns} link set v1 up");
        // The pool's third address is the host's already, on another interface: the check before
        // each add must see it, also right after the refused remove below.
        TwoHosts.Ip($"-n {ns} addr add 2001:db8:5::3/128 dev v1 nodad");
        var env = new Dictionary<string, string>
        {
            ["SOCKSHIM_POOL"] = "2001:db8:5::/112", ["SOCKSHIM_PROVISIONER"] = "netlink", ["SOCKSHIM_INTERFACE"] = "v0",
            ["SOCKSHIM_STATEDIR"] = space.StateDirectory,
        };
        using var agent = TwoHosts.StartIn(ns, "SockShim.TestAgent", ["one-by-one", "4"], env, redirectInput: true);
        var seen = new List<string>();
        for (int i = 0; i < 4; i++)
        {
            string? line = Programs.Line(agent);
            Assert.That(line, Does.StartWith("lease "), () => agent.StandardError.ReadToEnd());
            string address = line![6..];
            seen.Add(address);
            Assert.That(TwoHosts.Ip($"-n {ns} -6 -o addr show dev v0"), Does.Contain($" {address}/128 "));
            Assert.That(TwoHosts.Ip($"-n {ns} -6 route show table local"), Does.Contain($"local {address} dev v0 "), "usable: its local route is in");
            // The second address is taken off by hand first, so the kernel refuses its remove:
            // the error comes back unasked for, and the next acquire must not take it for its own.
            if (i == 1) TwoHosts.Ip($"-n {ns} addr del {address}/128 dev v0");
            agent.StandardInput.WriteLine("release");
            Assert.That(Programs.Line(agent), Is.EqualTo($"released {address}"), () => agent.StandardError.ReadToEnd());
            Assert.That(TwoHosts.Ip($"-n {ns} -6 -o addr show dev v0"), Does.Not.Contain($" {address}/"), "gone when the release returned");
        }
        Assert.That(seen, Is.EqualTo(new[] { "2001:db8:5::1", "2001:db8:5::2", "2001:db8:5::4", "2001:db8:5::5" }), "in the pool's order (lrr), the host's own ::3 skipped");
        Assert.That(agent.WaitForExit(30_000), Is.True);
        Assert.That(agent.ExitCode, Is.Zero, () => agent.StandardError.ReadToEnd());
    }
}
