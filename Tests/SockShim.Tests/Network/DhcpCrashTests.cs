using System.Text.RegularExpressions;

namespace SockShim.Tests.Network;

/// <summary>
/// Journal before the wire: a holder killed with SIGKILL at any step of an acquisition leaves
/// nothing leased. The slot records the server and client identifier before the REQUEST goes
/// out, so `sockshim gc` releases at the server whatever it bound, and takes any address off
/// the interface. Witnesses: dnsmasq's lease file (a released lease leaves it), its log, and
/// `ip addr` in the client's namespace. The kill is the process's own SIGKILL at the step
/// (SOCKSHIM_TEST_KILL_AT), so each step is hit exactly, not raced from outside.
/// </summary>
[NonParallelizable]
public class DhcpCrashTests
{
    [SetUp]
    public void Root() => TwoHosts.RequireRoot();

    [TestCase("after-discover")]
    [TestCase("after-request")]
    [TestCase("after-ack")]
    [TestCase("after-provision")]
    [CancelAfter(120_000)]
    public void A_holder_killed_at_each_step_of_an_acquisition_leaves_no_lease_after_gc(string step)
    {
        using var lan = new DhcpLan(clients: 1);
        lan.StartDnsmasq();
        string host = lan.Clients[0];
        string mac = lan.MacOf(host);
        var env = lan.Pool();
        env["SOCKSHIM_TEST_KILL_AT"] = step;
        var (exit, output, error) = TwoHosts.RunIn(host, "SockShim.TestAgent", ["hold", "1"], env, TimeSpan.FromSeconds(60));
        Assert.That(exit, Is.EqualTo(128 + 9), $"killed by its own SIGKILL at {step}: {output} {error}");
        Assert.That(output, Does.Not.Contain("lease "), "no socket got the address");

        // What the crash left: the server saw the step (its log), and from the REQUEST on it
        // bound a lease that nothing of the dead process will release.
        string log = Path.Combine(lan.Directory, "dnsmasq.log");
        string seen = step == "after-discover" ? "DHCPOFFER" : "DHCPACK";
        Assert.That(DhcpLan.Eventually(() => File.ReadAllText(log).Contains($"{seen}({DhcpLan.Bridge})") && File.ReadAllText(log).Contains(mac), TimeSpan.FromSeconds(10)),
            Is.True, () => $"dnsmasq answered the {step[6..]}: {lan.ServerLogTail()}");
        if (step != "after-discover")
        {
            Assert.That(DhcpLan.Eventually(() => lan.Leases().Count == 1, TimeSpan.FromSeconds(10)), Is.True, () => $"dnsmasq leased one address: {File.ReadAllText(lan.LeaseFile)}");
            var leased = lan.Leases()[0].Address;
            bool onInterface = lan.AddressesOf(host).Contains(leased);
            Assert.That(onInterface, Is.EqualTo(step == "after-provision"), $"{leased} is on {DhcpLan.ClientLink} only once provisioned");
            var (_, status, _) = TwoHosts.RunIn(host, "SockShim.Interceptor", ["status", "--state-dir", lan.StateDirectory], env);
            Assert.That(status, Does.Match($@"(?m)^dhcp +{Regex.Escape(leased)} .*holder gone"), "the journal names the dead holder's lease");
        }
        else Assert.That(lan.Leases(), Is.Empty, "an offer binds nothing at dnsmasq");

        var (gcExit, gcOut, gcErr) = TwoHosts.RunIn(host, "SockShim.Interceptor", ["gc", "--state-dir", lan.StateDirectory], env);
        Assert.That(gcExit, Is.Zero, gcErr);
        int journalled = step == "after-discover" ? 0 : 1;
        Assert.That(gcOut, Does.Contain($"{journalled} table entr"), "gc freed the journalled slot");
        Assert.That(DhcpLan.Eventually(() => lan.Leases().Count == 0, TimeSpan.FromSeconds(10)), Is.True,
            () => $"dnsmasq's lease file ends empty: {File.ReadAllText(lan.LeaseFile)}\n{lan.ServerLogTail()}");
        if (journalled == 1) Assert.That(File.ReadAllText(log), Does.Contain($"DHCPRELEASE({DhcpLan.Bridge})"), "released at the server");
        Assert.That(lan.AddressesOf(host), Is.EqualTo(new[] { "192.0.2.1" }), "only the host's own address is left");
    }
}
