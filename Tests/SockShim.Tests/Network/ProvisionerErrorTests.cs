using SockShim.Interceptor.Cli;

namespace SockShim.Tests.Network;

/// <summary>What a user sees when a provisioner cannot work: which setting, why, what to do.</summary>
public class ProvisionerErrorTests
{
    private static (int Exit, string Err) Config(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        string dir = "/dev/shm/sockshim-test-provisioner-errors";
        int exit = SockShimCli.Run(["config", "--check-host", "--state-dir", dir, .. args], output, error);
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        return (exit, error.ToString());
    }

    [Test]
    public void A_missing_interface_is_named_with_the_ones_that_exist()
    {
        var (exit, err) = Config("--provisioner", "netlink", "--interface", "nosuch0", "--pool", "192.0.2.0/28");
        Assert.That(exit, Is.EqualTo(2));
        Assert.That(err, Does.Contain("--interface = 'nosuch0'").And.Contain("does not exist").And.Contain("lo"));
    }

    [Test]
    public void The_netlink_provisioner_without_an_interface_says_it_needs_one()
    {
        var (exit, err) = Config("--provisioner", "netlink", "--pool", "192.0.2.0/28");
        Assert.That(exit, Is.EqualTo(2));
        Assert.That(err, Does.Contain("needs the interface"));
    }

    [Test]
    public void An_anyip_prefix_not_routed_to_the_host_says_how_to_route_it()
    {
        var (exit, err) = Config("--provisioner", "anyip", "--pool", "203.0.113.0/24");
        Assert.That(exit, Is.EqualTo(2));
        Assert.That(err, Does.Contain("not routed to this host").And.Contain("ip route add local 203.0.113.0/24 dev lo"));
    }

    [Test]
    public void Without_CAP_NET_ADMIN_the_capability_is_named_with_how_to_grant_it()
    {
        TwoHosts.RequireRoot();
        if (!File.Exists("/usr/bin/setpriv")) Assert.Fail("missing precondition: needs setpriv (util-linux) to drop a capability");
        var (exit, output) = RunDropped(["dotnet", Programs.PathOf("SockShim.Interceptor"), "config", "--check-host", "--provisioner", "netlink", "--interface", "lo", "--pool", "192.0.2.0/28",
            "--state-dir", "/dev/shm/sockshim-test-nocap"]);
        Assert.That(exit, Is.EqualTo(2), output);
        Assert.That(output, Does.Contain("CAP_NET_ADMIN").And.Contain("setcap"));
    }

    private static (int, string) RunDropped(string[] command)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("setpriv") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "--bounding-set", "-net_admin", "--inh-caps", "-net_admin", "--" }.Concat(command)) psi.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(psi)!;
        string all = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, all);
    }
}
