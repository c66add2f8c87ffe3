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

    /// <summary>A test's own directories, gone whatever it left in them.</summary>
    private static void RemoveDirectories(params string[] paths)
    {
        foreach (var path in paths)
            if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
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

    /// <summary>Before it execs the command, `sockshim run` (the managed tool) removes its own
    /// .NET diagnostics socket, so the app's runtime can bind the same name, and its debugger's
    /// FIFOs, which its runtime would have removed at exit. A .NET process with
    /// the same pid in another pid namespace sharing the temporary directory (two containers'
    /// pid 1) has a socket of that pid too, with another start time in its name: it stays.</summary>
    [Test]
    public void The_diagnostics_socket_of_another_pid_namespaces_process_with_the_same_pid_stays()
    {
        // A private temporary directory of its own (made exclusively, mode 0700), as TMPDIR.
        string tmp = Directory.CreateTempSubdirectory("sockshim-test-diagtmp-").FullName;
        try
        {
            // The other namespace's pid 1, a .NET app, started at jiffy 1 (no process of a new
            // namespace can have started then): its diagnostics socket, listening as its
            // runtime's does while the app lives (a disposed .NET socket removes its file).
            string others = Path.Combine(tmp, "dotnet-diagnostic-1-1-socket");
            using var listening = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
            listening.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(others));
            listening.Listen();
            Assert.That(File.Exists(others), Is.True, "the other process's socket is there before the run");

            var psi = new ProcessStartInfo("unshare") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { "--pid", "--fork", "--mount-proc", "dotnet", Programs.PathOf("SockShim.Interceptor"), "run", "--", "sh", "-c", "echo \"pid $$\"; ls \"$TMPDIR\"" })
                psi.ArgumentList.Add(a);
            foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("SOCKSHIM_")).ToList()) psi.Environment.Remove(key);
            psi.Environment["TMPDIR"] = tmp;
            var (exit, output, error) = Programs.Complete(Process.Start(psi)!, "sockshim run as pid 1 of a pid namespace", TimeSpan.FromMinutes(5));
            Assert.That(exit, Is.Zero, output + error);
            Assert.That(output, Does.StartWith("pid 1\n"), "the command runs as the launcher's pid 1: " + output);
            Assert.That(File.Exists(others), Is.True, "the other process's diagnostics socket was not removed: " + output);
            var sockets = output.Split('\n').Where(l => l.StartsWith("dotnet-diagnostic-")).ToList();
            Assert.That(sockets, Is.EqualTo(new[] { "dotnet-diagnostic-1-1-socket" }), "the launcher's own socket was removed before the exec, and only it");
            // Nor does the launcher's runtime leave its debugger's FIFOs behind (it never exits).
            Assert.That(output, Does.Not.Contain("clr-debug-pipe-"), "the launcher's debugger FIFOs were removed before the exec");
            Assert.That(Directory.EnumerateFileSystemEntries(tmp).Select(Path.GetFileName), Is.EqualTo(new[] { "dotnet-diagnostic-1-1-socket" }), "nothing of the launcher's is left");
        }
        finally
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
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

    // A process started through `sh -c SCRIPT`, as root or (setpriv, no capability) the attacker
    // account, with the pool's environment and nothing of this machine's own SockShim settings.
    private Process StartShell(string script, Dictionary<string, string> env, bool asAttacker)
    {
        var psi = new ProcessStartInfo(asAttacker ? "setpriv" : "sh") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        var args = asAttacker ? new[] { $"--reuid={_uid}", $"--regid={_gid}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--", "sh", "-c", script } : new[] { "-c", script };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("SOCKSHIM_")).ToList()) psi.Environment.Remove(key);
        foreach (var (k, v) in env) psi.Environment[k] = v;
        return Process.Start(psi)!;
    }

    /// <summary>
    /// Attack 6 under hidepid: /proc mounted with hidepid hides a process's entry from every
    /// process that may not ptrace it, and that includes processes of its own account when it is
    /// non-dumpable (it ran a program given a capability or set-user-ID, or guards secrets as
    /// ssh-agent does) and the looker has no CAP_SYS_PTRACE: an unprivileged user, or root in a
    /// container without that capability. Tables are per account, so the looker that matters is
    /// another process of the holder's own account: it finds the pool full and checks whether the
    /// holder still runs. It cannot read /proc/PID (invisible and ptraceable: no such entry;
    /// noaccess: access denied), and that must count as alive: only the kernel's "no such
    /// process" means gone. (Root's case needs hidepid=ptraceable: the other modes exempt the
    /// group of gid=, root's by default.)
    /// Were an unreadable entry counted as dead, the looker would reclaim and take the holder's
    /// addresses, and the holder would later remove them from under it.
    /// </summary>
    [TestCase("invisible", true, TestName = "An unprivileged process under hidepid=invisible (2) never takes the addresses of its account's hidden holder")]
    [TestCase("noaccess", true, TestName = "An unprivileged process under hidepid=noaccess (1) never takes the addresses of its account's hidden holder")]
    [TestCase("ptraceable", false, TestName = "Root without capabilities under hidepid=ptraceable never takes the addresses of root's hidden holder")]
    [CancelAfter(120_000)]
    public void A_holder_that_proc_hides_is_never_counted_gone(string hidepid, bool unprivileged)
    {
        string state = $"/dev/shm/sockshim-test-hidepid-{_id}-{hidepid}";
        var env = new Dictionary<string, string>(Pool(state)) { ["SOCKSHIM_POOL"] = "127.105.2.0/31", ["SOCKSHIM_POOLNAME"] = "hidden" };
        string agent = $"dotnet {Programs.PathOf("SockShim.TestAgent")}";
        var started = new List<Process>();
        try
        {
            // The holder: non-dumpable from the start, it takes the whole /31.
            var holder = StartShell($"exec {agent} hold 2", new Dictionary<string, string>(env) { ["AGENT_NONDUMPABLE"] = "1" }, unprivileged);
            started.Add(holder);
            var held = Held(holder);
            Assert.That(held, Has.Count.EqualTo(2), () => holder.StandardError.ReadToEnd());

            // The looker: in a mount namespace of its own with /proc remounted with hidepid (same
            // pid namespace, so /proc is its own and is read), as the same account with no
            // capability. It says first whether it can read the holder's entry: the scenario is
            // real only if it cannot.
            string drop = unprivileged ? $"--reuid={_uid} --regid={_gid} --clear-groups " : "";
            string looker = $"mount -t proc -o hidepid={hidepid} proc /proc && exec setpriv {drop}--inh-caps=-all --bounding-set=-all -- sh -c '" +
                $"if cat /proc/{holder.Id}/stat >/dev/null 2>&1; then echo visible; else echo hidden; fi; exec {agent} hold 1'";
            var psi = new ProcessStartInfo("unshare") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { "--mount", "--propagation", "private", "--", "sh", "-c", looker }) psi.ArgumentList.Add(a);
            foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("SOCKSHIM_")).ToList()) psi.Environment.Remove(key);
            foreach (var (k, v) in env) psi.Environment[k] = v;
            var second = Process.Start(psi)!;
            started.Add(second);
            // (No stderr in these messages: reading it to the end would wait for a looker that holds.)
            Assert.That(Programs.Line(second), Is.EqualTo("hidden"), "the looker cannot read the holder's /proc entry (else this tests nothing)");
            string answer = Programs.Line(second) ?? "";
            Assert.That(answer, Does.StartWith("error").And.Contain("exhausted"), $"the looker took nothing of the hidden holder's: {answer}");
            Assert.That(second.WaitForExit(30_000), Is.True);

            // From outside, as the holder's account: both addresses still the live holder's.
            Assert.That(holder.HasExited, Is.False, "the holder still runs");
            var status = StartShell($"exec dotnet {Programs.PathOf("SockShim.Interceptor")} status --json --state-dir {state}", env, unprivileged);
            started.Add(status);
            var json = status.StandardOutput.ReadToEndAsync();
            Assert.That(json.Wait(TimeSpan.FromSeconds(60)) && status.WaitForExit(30_000) && status.ExitCode == 0, Is.True, () => status.StandardError.ReadToEnd());
            var rows = System.Text.Json.JsonDocument.Parse(json.Result).RootElement.EnumerateArray()
                .Select(r => (r.GetProperty("address").GetString()!, r.GetProperty("pid").GetInt32(), r.GetProperty("alive").GetBoolean())).ToList();
            Assert.That(rows, Is.EquivalentTo(held.Select(a => (a, holder.Id, true))));
        }
        finally
        {
            foreach (var p in started) { if (!p.HasExited) p.Kill(entireProcessTree: true); p.Dispose(); }
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
            Assert.That(error, Does.Contain($"--socket {_protected}: {_protected} is not a socket").And.Not.Contain("   at "));
            AssertProtectedUnchanged();
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
