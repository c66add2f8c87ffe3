using System.Diagnostics;

namespace SockShim.Tests.Network;

/// <summary>
/// Two hosts on one machine: network namespaces A (the client) and B (the server) joined by a
/// veth pair, documentation addresses only: 192.0.2.1/24 and 2001:db8:a::1/64 on A's end,
/// .2 and ::2 on B's. Made fresh for a fixture and removed with every process in it.
/// </summary>
internal sealed class TwoHosts : IDisposable
{
    public string A { get; } = "ssa" + Guid.NewGuid().ToString("N")[..8];
    public string B { get; } = "ssb" + Guid.NewGuid().ToString("N")[..8];
    public const string LinkA = "vA", LinkB = "vB";
    public string StateDirectory { get; } = "/dev/shm/sockshim-test-ns-" + Guid.NewGuid().ToString("N")[..8];

    public static void RequireRoot()
    {
        if (Tmds.Linux.LibC.geteuid() != 0) Assert.Fail("missing precondition: needs root (network namespaces, CAP_NET_ADMIN); CI runs it as root");
        if (!File.Exists("/usr/sbin/ip") && !File.Exists("/sbin/ip") && !File.Exists("/usr/bin/ip")) Assert.Fail("missing precondition: needs iproute2 (`apt-get install iproute2`)");
    }

    public TwoHosts()
    {
        try { Build(); }
        catch
        {
            Dispose();
            throw;
        }
    }

    private void Build()
    {
        NeighbourLimits.EnsureRaised();
        Ip($"netns add {A}");
        Ip($"netns add {B}");
        Ip($"link add {LinkA} netns {A} type veth peer name {LinkB} netns {B}");
        Ip($"-n {A} addr add 192.0.2.1/24 dev {LinkA}");
        Ip($"-n {B} addr add 192.0.2.2/24 dev {LinkB}");
        Ip($"-n {A} addr add 2001:db8:a::1/64 dev {LinkA} nodad");
        Ip($"-n {B} addr add 2001:db8:a::2/64 dev {LinkB} nodad");
        foreach (var (ns, link) in new[] { (A, LinkA), (B, LinkB) })
        {
            Ip($"-n {ns} link set {link} up");
            Ip($"-n {ns} link set lo up");
        }
        // B accepts many connections at once.
        Exec(B, "sysctl", "-q", "-w", "net.core.somaxconn=65535");
    }

    public static string Ip(string arguments) => Run("ip", arguments.Split(' '));

    public static string Exec(string ns, params string[] command) => Run("ip", ["netns", "exec", ns, .. command]);

    public static string Run(string file, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(30))) { p.Kill(true); Assert.Fail($"{file} {string.Join(' ', args)} timed out"); }
        p.WaitForExit();
        if (p.ExitCode != 0) Assert.Fail($"{file} {string.Join(' ', args)} failed ({p.ExitCode}): {error.Result}");
        return output.Result;
    }

    // Clean-up must not fail a test that already passed or failed on its own merits.
    internal static string Quiet(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit(10_000);
        return output;
    }

    /// <summary>A .NET program of the test output, started inside namespace <paramref name="ns"/>.</summary>
    public static Process StartIn(string ns, string program, IEnumerable<string> args, IDictionary<string, string>? env = null, bool redirectInput = false) =>
        Programs.Start(program, args, env, ns, redirectInput);

    public static (int Exit, string Out, string Err) RunIn(string ns, string program, IEnumerable<string> args, IDictionary<string, string>? env = null, TimeSpan? timeout = null) =>
        Programs.Run(program, args, env, timeout ?? TimeSpan.FromMinutes(2), ns);

    /// <summary>The addresses on A's link, as `ip` reports them.</summary>
    public List<string> AddressesOnA() =>
        Ip($"-n {A} -o addr show dev {LinkA}").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Where(f => f.Length > 3).Select(f => f[3].Split('/')[0]).ToList();

    public void Dispose()
    {
        foreach (var ns in new[] { A, B })
        {
            foreach (var pid in Quiet("ip", "netns", "pids", ns).Split('\n', StringSplitOptions.RemoveEmptyEntries))
                try { Process.GetProcessById(int.Parse(pid)).Kill(true); } catch (ArgumentException) { /* already exited */ }
            Quiet("ip", "netns", "delete", ns);
        }
        if (Directory.Exists(StateDirectory)) Directory.Delete(StateDirectory, true);
    }
}

/// <summary>A network namespace of a test's own, with lo up, and a state directory for it; on
/// Dispose every process in the namespace is killed and both are removed.</summary>
internal sealed class TestNamespace : IDisposable
{
    public string Name { get; }
    public string StateDirectory { get; }

    public TestNamespace(string prefix)
    {
        string id = Guid.NewGuid().ToString("N")[..8];
        Name = prefix + id;
        StateDirectory = $"/dev/shm/sockshim-test-{prefix}-{id}";
        TwoHosts.Ip($"netns add {Name}");
        TwoHosts.Ip($"-n {Name} link set lo up");
    }

    public void Dispose()
    {
        foreach (var pid in TwoHosts.Quiet("ip", "netns", "pids", Name).Split('\n', StringSplitOptions.RemoveEmptyEntries))
            try { System.Diagnostics.Process.GetProcessById(int.Parse(pid)).Kill(true); } catch (ArgumentException) { }
        TwoHosts.Quiet("ip", "netns", "delete", Name);
        if (Directory.Exists(StateDirectory)) Directory.Delete(StateDirectory, true);
    }
}
