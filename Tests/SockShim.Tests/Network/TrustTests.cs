using System.Diagnostics;
using SockShim.Stack.Claims;
using SockShim.Stack.Configuration;

namespace SockShim.Tests.Network;

/// <summary>
/// The host trust model, played by an unprivileged attacker (a user of its own, no capability,
/// through setpriv) against root's SockShim, and checked from outside: the file the attacker
/// aims at, `sockshim status`, the exit codes and messages root's processes give.
/// </summary>
[NonParallelizable]
public partial class TrustTests
{
    private string _user = "";
    private uint _uid, _gid;
    private readonly string _id = Guid.NewGuid().ToString("N")[..8];
    private string _protected = "";

    [OneTimeSetUp]
    public void CreateAttacker()
    {
        TwoHosts.RequireRoot();
        _user = "ssa" + _id;
        TwoHosts.Run("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _user]);
        _uid = uint.Parse(TwoHosts.Run("id", ["-u", _user]).Trim());
        _gid = uint.Parse(TwoHosts.Run("id", ["-g", _user]).Trim());
        // A root-only file, standing for /etc/ld.so.preload.
        _protected = $"/dev/shm/sockshim-test-protected-{_id}";
        File.WriteAllText(_protected, "root's own\n");
        File.SetUnixFileMode(_protected, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    [OneTimeTearDown]
    public void RemoveAttacker()
    {
        if (_user != "") TwoHosts.Run("userdel", [_user]);
        if (File.Exists(_protected)) File.Delete(_protected);
    }

    private (int Exit, string Output) AsAttacker(string script)
    {
        var psi = new ProcessStartInfo("setpriv") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { $"--reuid={_uid}", $"--regid={_gid}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--", "sh", "-c", script })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        Assert.That(p.WaitForExit(30_000), Is.True);
        return (p.ExitCode, output);
    }

    private void AssertProtectedUnchanged()
    {
        Assert.That(File.ReadAllText(_protected), Is.EqualTo("root's own\n"), "the file the links point at");
        Assert.That(File.GetUnixFileMode(_protected), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
        Assert.That(new FileInfo(_protected).LinkTarget, Is.Null);
    }

    // The addresses a `hold` agent printed before "held".
    private static List<string> Held(Process agent)
    {
        var held = new List<string>();
        string? line;
        while ((line = Programs.Line(agent)) is not null && line != "held") if (line.StartsWith("lease ")) held.Add(line[6..]);
        return held;
    }


    private static Dictionary<string, string> Pool(string state) => new()
    {
        ["SOCKSHIM_POOL"] = "127.105.0.0/29", ["SOCKSHIM_POOLNAME"] = "trust", ["SOCKSHIM_STATEDIR"] = state,
    };

    private static string TablePath(string state) => Tables.PathOf(state, "127.105.0.0/29", "trust");

    /// <summary>Attack 1: the state directory made first by another account (it is empty after
    /// boot), with links at the names root would write. Root refuses it, naming path, owner and
    /// mode and what to do; nothing is written through the links.</summary>
    [TestCase("1777")]
    [TestCase("755")]
    public void A_state_directory_another_account_made_is_refused_and_nothing_is_written_through_it(string mode)
    {
        string trap = $"/dev/shm/sockshim-test-trap-{_id}-{mode}";
        string table = TablePath(trap);
        try
        {
            var (made, output) = AsAttacker($"mkdir -m {mode} {trap} && ln -s {_protected} {table} && ln -s {_protected} {table}.pool.json");
            Assert.That(made, Is.Zero, output);

            var (exit, stdout, stderr) = Programs.Run("SockShim.TestAgent", ["hold", "1"], Pool(trap));
            Assert.That(exit, Is.Not.Zero, stdout);
            Assert.That(stderr, Does.Contain($"state directory {trap} is owned by uid {_uid} ({_user})").And.Contain($"mode {mode}").And.Contain("remove it"));
            foreach (var verb in new[] { "status", "gc" })
            {
                var (verbExit, verbOut, verbErr) = Programs.Run("SockShim.Interceptor", [verb, "--state-dir", trap]);
                Assert.That(verbExit, Is.EqualTo(2), $"{verb}: {verbOut}{verbErr}");
                Assert.That(verbErr, Does.Contain($"owned by uid {_uid}").And.Not.Contain("   at "), verb);
            }
            AssertProtectedUnchanged();
        }
        finally
        {
            if (Directory.Exists(trap)) Directory.Delete(trap, true);
        }
    }

    /// <summary>Attack 4: root's tables and descriptions, in root's own directory, cannot be
    /// written, truncated or added to by another account; root's holder keeps its addresses.</summary>
    [Test]
    public void Roots_tables_cannot_be_written_by_another_account()
    {
        string state = $"/dev/shm/sockshim-test-root-{_id}";
        Process? holder = null;
        try
        {
            holder = Programs.Start("SockShim.TestAgent", ["hold", "2"], Pool(state));
            var held = Held(holder);
            Assert.That(held, Has.Count.EqualTo(2), () => holder.StandardError.ReadToEnd());
            string table = TablePath(state);
            Assert.That(File.GetUnixFileMode(state) & (UnixFileMode.GroupWrite | UnixFileMode.OtherWrite), Is.EqualTo((UnixFileMode)0));

            foreach (var attack in new[] { $"printf 'x' >> {table}", $"truncate -s 0 {table}", $"printf '{{}}' > {table}.pool.json", $"touch {state}/planted", $"ln -s {_protected} {state}/planted" })
            {
                var (exit, output) = AsAttacker(attack);
                Assert.That(exit, Is.Not.Zero, $"`{attack}` was refused: {output}");
            }
            Assert.That(new FileInfo(table).Length, Is.EqualTo(64 + 64L * 6), "the table is whole");
            var (statusExit, status, statusErr) = Programs.Run("SockShim.Interceptor", ["status", "--state-dir", state]);
            Assert.That(statusExit, Is.Zero, statusErr);
            foreach (var address in held) Assert.That(status, Does.Contain(address).And.Contain("live"), "status, from outside the holder");
            AssertProtectedUnchanged();
        }
        finally
        {
            if (holder is { HasExited: false }) holder.Kill();
            holder?.Dispose();
            if (Directory.Exists(state)) Directory.Delete(state, true);
        }
    }

    /// <summary>A link in place of a table, even in root's own directory, is never followed.</summary>
    [Test]
    public void A_link_in_place_of_a_table_is_not_followed()
    {
        string state = $"/dev/shm/sockshim-test-link-{_id}";
        try
        {
            Directory.CreateDirectory(state);
            File.SetUnixFileMode(state, (UnixFileMode)0b111_101_101);
            File.CreateSymbolicLink(TablePath(state), _protected);
            var (exit, _, stderr) = Programs.Run("SockShim.TestAgent", ["hold", "1"], Pool(state));
            Assert.That(exit, Is.Not.Zero);
            Assert.That(stderr, Does.Contain("cannot be opened").And.Contain("a link, or another account's file, is never opened"));
            AssertProtectedUnchanged();
        }
        finally
        {
            if (Directory.Exists(state)) Directory.Delete(state, true);
        }
    }

    /// <summary>Attack 6: two processes in different pid namespaces (two containers of one pod)
    /// share the state directory and the network. The second cannot tell whether the first's
    /// pid is alive, so it counts it as alive and never takes its addresses.</summary>
    [Test]
    public void Processes_in_other_pid_namespaces_never_lose_their_addresses()
    {
        string state = $"/dev/shm/sockshim-test-pidns-{_id}";
        var env = new Dictionary<string, string>(Pool(state)) { ["SOCKSHIM_POOL"] = "127.105.1.0/31" };
        var started = new List<Process>();
        try
        {
            Process InPidNamespace(string verb, string count)
            {
                var psi = new ProcessStartInfo("unshare") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
                foreach (var a in new[] { "--pid", "--fork", "--mount-proc", "dotnet", Programs.PathOf("SockShim.TestAgent"), verb, count }) psi.ArgumentList.Add(a);
                foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("SOCKSHIM_")).ToList()) psi.Environment.Remove(key);
                foreach (var (k, v) in env) psi.Environment[k] = v;
                return Process.Start(psi)!;
            }
            var first = InPidNamespace("hold", "2");
            started.Add(first);
            var held = Held(first);
            Assert.That(held, Has.Count.EqualTo(2), () => first.StandardError.ReadToEnd());

            var second = InPidNamespace("hold", "1");
            started.Add(second);
            string answer = Programs.Line(second) ?? "";
            Assert.That(answer, Does.StartWith("error").And.Contain("exhausted"), "the second namespace took nothing of the first's");
            Assert.That(second.WaitForExit(30_000), Is.True);
            Assert.That(first.HasExited, Is.False, "the first still holds both");
        }
        finally
        {
            foreach (var p in started) { if (!p.HasExited) p.Kill(entireProcessTree: true); p.Dispose(); }
            if (Directory.Exists(state)) Directory.Delete(state, true);
        }
    }

    /// <summary>A process killed in the middle of a release (its slot marked as being released,
    /// not yet free) leaves a slot that names it as the releaser: the next process sees it gone
    /// and reclaims the slot, so the address is not lost to the pool.</summary>
    [Test]
    public void A_release_cut_short_by_a_kill_is_reclaimed()
    {
        string state = $"/dev/shm/sockshim-test-stuck-{_id}";
        var env = new Dictionary<string, string>(Pool(state)) { ["SOCKSHIM_POOL"] = "127.105.3.0/31" };
        try
        {
            using (var stuck = Programs.Start("SockShim.TestAgent", ["stuck-release", "2"], env))
            {
                Assert.That(Held(stuck), Is.Empty, () => stuck.StandardError.ReadToEnd());
                stuck.Kill();
                Assert.That(stuck.WaitForExit(10_000), Is.True);
            }
            using var next = Programs.Start("SockShim.TestAgent", ["hold", "2"], env);
            var held = Held(next);
            Assert.That(held, Is.EquivalentTo(new[] { "127.105.3.0", "127.105.3.1" }), () => "both addresses came back: " + next.StandardError.ReadToEnd());
            next.Kill();
        }
        finally
        {
            if (Directory.Exists(state)) Directory.Delete(state, true);
        }
    }

    /// <summary>Attack 8: whatever is at --socket is deleted by the helper today; now only a
    /// socket of its own that a previous helper left. A file there stays, and the helper refuses
    /// with a one-line message (exit 2).</summary>
    [Test]
    public void The_helper_deletes_nothing_at_its_socket_path_but_a_stale_socket_of_its_own()
    {
        string dir = $"/dev/shm/sockshim-test-helper-{_id}";
        Directory.CreateDirectory(dir);
        try
        {
            string config = Path.Combine(dir, "helper.json");
            File.WriteAllText(config, """{ "pools": [ { "name": "lo", "ranges": ["127.107.0.0/24"] } ], "grants": [ { "user": "root", "pools": ["lo"] } ] }""");
            var (exit, output, error) = Programs.Run("SockShim.Interceptor", ["serve", "--config", config, "--socket", _protected, "--state-dir", Path.Combine(dir, "state")], timeout: TimeSpan.FromSeconds(60));
            Assert.That(exit, Is.EqualTo(2), output + error);
            Assert.That(error, Does.Contain($"--socket {_protected} is not a socket").And.Not.Contain("   at "));
            AssertProtectedUnchanged();
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
