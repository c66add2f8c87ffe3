using System.Diagnostics;

namespace SockShim.Tests.Network;

/// <summary>
/// Paths handed to root (trust-model.md: "every environment variable and configuration path
/// handed to a root process"): the configuration file chooses the pools, interfaces and routes
/// root's SockShim sets up, and the state directory holds the tables root's processes map. Both
/// are used only when they and every directory above them are root's (or the account's own) and
/// no other account can change them; each case has a control root accepts.
/// </summary>
public partial class TrustTests
{
    private const string ConfigPool = "127.105.8.0/29";

    private static string PoolConfig(string name) => $$"""{ "pools": [ { "name": "{{name}}", "ranges": ["{{ConfigPool}}"] } ] }""";

    /// <summary>An attacker's configuration file (its own, or root's where the attacker can
    /// change it) would choose what root provisions: refused by the CLI (exit 2, one line naming
    /// the file and what is wrong) and by an app's stack, which takes no address from it. The
    /// same file with root's own mode in root's own directory is used.</summary>
    [TestCase("attacker's file", TestName = "A configuration file another account owns is refused")]
    [TestCase("root's file, others may write it", TestName = "A configuration file others may write is refused")]
    [TestCase("root's file, in a directory others may write", TestName = "A configuration file in a directory others may write is refused")]
    [TestCase("root's file, through the attacker's link", TestName = "A configuration file reached through another account's link is read as the file it led to")]
    [TestCase("control", TestName = "A configuration file of root's own in root's directory is used")]
    public void A_configuration_file_root_is_handed(string how)
    {
        string dir = $"/dev/shm/sockshim-test-config-{_id}";
        string state = $"/dev/shm/sockshim-test-config-state-{_id}";
        string config = Path.Combine(dir, "sockshim.json");
        string given = config;
        Process? holder = null;
        try
        {
            if (how == "attacker's file")
            {
                var (made, output) = AsAttacker($"mkdir -m 755 {dir} && printf '%s' '{PoolConfig("evil")}' > {config}");
                Assert.That(made, Is.Zero, output);
            }
            else
            {
                Directory.CreateDirectory(dir);
                File.SetUnixFileMode(dir, how == "root's file, in a directory others may write" ? (UnixFileMode)0b111_111_111 : (UnixFileMode)0b111_101_101);
                File.WriteAllText(config, PoolConfig("roots"));
                File.SetUnixFileMode(config, how == "root's file, others may write it" ? (UnixFileMode)0b110_110_110 : (UnixFileMode)0b110_100_100);
            }
            if (how == "root's file, through the attacker's link")
            {
                given = $"/dev/shm/sockshim-test-config-link-{_id}";
                var (linked, output) = AsAttacker($"ln -s {config} {given}");
                Assert.That(linked, Is.Zero, output);
            }
            bool refused = how is "attacker's file" or "root's file, others may write it" or "root's file, in a directory others may write";

            var (exit, stdout, stderr) = Programs.Run("SockShim.Interceptor", ["config", "--config", given]);
            if (refused)
            {
                Assert.That(exit, Is.EqualTo(2), stdout + stderr);
                string expected = how switch
                {
                    "attacker's file" => $"{dir} is owned by uid {_uid} ({_user})",
                    "root's file, others may write it" => $"{config} is writable by other accounts (mode 666",
                    _ => $"{dir} is writable by other accounts (mode 777",
                };
                Assert.That(stderr, Does.Contain($"--config = '{given}'").And.Contain(expected).And.Contain("writable by no other account").And.Not.Contain("   at "));
                Assert.That(stderr.Trim().Split('\n'), Has.Length.EqualTo(1), "one line, no stack trace");
            }
            else Assert.That(exit, Is.Zero, stderr);

            // An app's stack (SOCKSHIM_CONFIG, as sudo -E hands it over) takes no address from a
            // refused file; the control holds one of its pool's addresses.
            var env = new Dictionary<string, string> { ["SOCKSHIM_CONFIG"] = given, ["SOCKSHIM_STATEDIR"] = state };
            if (refused)
            {
                var (agentExit, agentOut, agentErr) = Programs.Run("SockShim.TestAgent", ["hold", "1"], env);
                Assert.That(agentExit, Is.Not.Zero, agentOut);
                Assert.That(agentOut, Does.Not.Contain("lease "), "no address was taken");
                Assert.That(agentErr, Does.Contain(expectedShort(how)));
                Assert.That(Directory.Exists(state) ? Directory.GetFiles(state) : [], Is.Empty, "no table was made for the file's pool");
            }
            else
            {
                holder = Programs.Start("SockShim.TestAgent", ["hold", "1"], env);
                var held = Held(holder);
                Assert.That(held, Has.Count.EqualTo(1), () => holder.StandardError.ReadToEnd());
                Assert.That(held[0], Does.StartWith("127.105.8."), "an address of the file's pool");
            }
        }
        finally
        {
            if (holder is { HasExited: false }) holder.Kill();
            holder?.Dispose();
            if (given != config) File.Delete(given);
            RemoveDirectories(dir, state);
        }

        string expectedShort(string how) => how == "attacker's file" ? $"owned by uid {_uid}" : "writable by other accounts";
    }

    /// <summary>A state directory inside one another account can change: that account could move
    /// root's directory aside and put its own, or a link to it, in its place between root's check
    /// and its next open. Refused before anything is made there (exit 2 from the CLI); under a
    /// root-owned sticky directory (as /dev/shm is) it is fine.</summary>
    [TestCase("attacker's directory", TestName = "A state directory inside another account's directory is refused")]
    [TestCase("root's directory others may write", TestName = "A state directory inside a directory others may write is refused")]
    [TestCase("root's sticky directory", TestName = "A state directory inside a root-owned sticky directory is used")]
    public void A_state_directory_inside(string how)
    {
        string parent = $"/dev/shm/sockshim-test-parent-{_id}";
        string state = Path.Combine(parent, "state");
        Process? holder = null;
        try
        {
            if (how == "attacker's directory")
            {
                var (made, output) = AsAttacker($"mkdir -m 755 {parent}");
                Assert.That(made, Is.Zero, output);
            }
            else
            {
                Directory.CreateDirectory(parent);
                File.SetUnixFileMode(parent, how == "root's sticky directory" ? (UnixFileMode)0b1_111_111_111 : (UnixFileMode)0b111_111_111);
            }
            if (how == "root's sticky directory")
            {
                holder = Programs.Start("SockShim.TestAgent", ["hold", "1"], Pool(state));
                Assert.That(Held(holder), Has.Count.EqualTo(1), () => holder.StandardError.ReadToEnd());
                Assert.That(File.Exists(TablePath(state)), Is.True, "the table is in the state directory");
                return;
            }
            string expected = how == "attacker's directory" ? $"{parent} is owned by uid {_uid} ({_user})" : $"{parent} is writable by other accounts (mode 777";
            var (exit, stdout, stderr) = Programs.Run("SockShim.TestAgent", ["hold", "1"], Pool(state));
            Assert.That(exit, Is.Not.Zero, stdout);
            Assert.That(stdout, Does.Not.Contain("lease "), "no address was taken");
            Assert.That(stderr, Does.Contain($"state directory {state} is in a directory another account could change: {expected}"));
            Assert.That(Directory.Exists(state), Is.False, "nothing was made in it");
            // `run` refuses it before the app starts, not at the app's first socket.
            string marker = Path.Combine(Path.GetTempPath(), $"sockshim-test-ran-{_id}");
            var (runExit, runOut, runErr) = Programs.Run("SockShim.Interceptor", ["run", "--state-dir", state, "--", "sh", "-c", $"touch {marker}"]);
            Assert.That(runExit, Is.EqualTo(2), runOut + runErr);
            Assert.That(runErr, Does.Contain(expected).And.Not.Contain("   at "));
            Assert.That(File.Exists(marker), Is.False, "the app never started");
            Assert.That(Directory.Exists(state), Is.False, "nothing was made in it");
            // Missing (status would list it there once made; gc refuses a missing one anyway),
            // and there (as the attacker could make it appear, so the verbs look inside).
            foreach (bool exists in new[] { false, true })
                foreach (var verb in exists ? new[] { "status", "gc" } : ["status"])
                {
                    if (exists) Directory.CreateDirectory(state);
                    var (verbExit, verbOut, verbErr) = Programs.Run("SockShim.Interceptor", [verb, "--state-dir", state]);
                    Assert.That(verbExit, Is.EqualTo(2), $"{verb}, {(exists ? "there" : "missing")}: {verbOut}{verbErr}");
                    Assert.That(verbErr, Does.Contain(expected).And.Not.Contain("   at "), verb);
                    if (exists) Directory.Delete(state);
                }
        }
        finally
        {
            if (holder is { HasExited: false }) holder.Kill();
            holder?.Dispose();
            RemoveDirectories(parent);
        }
    }

    /// <summary>The app `run` starts is told the configuration file and the state directory by
    /// the paths the checks resolved, not through the links it was given: a link re-pointed after
    /// the check (to another root-owned file) cannot give the app other settings than the ones
    /// checked.</summary>
    [Test]
    public void The_app_is_told_the_configuration_and_state_directory_that_were_checked()
    {
        string dir = $"/dev/shm/sockshim-test-told-{_id}";
        string config = Path.Combine(dir, "sockshim.json");
        string configLink = $"/dev/shm/sockshim-test-told-config-{_id}", dirLink = $"/dev/shm/sockshim-test-told-dir-{_id}";
        try
        {
            Directory.CreateDirectory(dir);
            File.SetUnixFileMode(dir, (UnixFileMode)0b111_101_101);
            File.WriteAllText(config, PoolConfig("told"));
            var (linked, output) = AsAttacker($"ln -s {config} {configLink} && ln -s {dir} {dirLink}");
            Assert.That(linked, Is.Zero, output);
            var (exit, stdout, stderr) = Programs.Run("SockShim.Interceptor",
                ["run", "--config", configLink, "--state-dir", Path.Combine(dirLink, "state"), "--", "sh", "-c", "printf '%s\\n' \"$SOCKSHIM_CONFIG\" \"$SOCKSHIM_STATEDIR\""]);
            Assert.That(exit, Is.Zero, stderr);
            Assert.That(stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(new[] { config, Path.Combine(dir, "state") }));
        }
        finally
        {
            File.Delete(configLink);
            File.Delete(dirLink);
            RemoveDirectories(dir);
        }
    }

    /// <summary>The helper's socket is made, chmod'ed and removed by path as root: under a
    /// directory the attacker owns, root would make a directory in it and bind there (and a
    /// link swapped in between would have root chmod its target); through the attacker's link,
    /// the directory is the one the link led to when checked, and stays so.</summary>
    [TestCase("in a directory the attacker owns", TestName = "The helper refuses a socket under another account's directory")]
    [TestCase("through the attacker's link", TestName = "The helper makes its socket where the attacker's link led when it was checked")]
    [TestCase("where a helper serves", TestName = "The helper never removes the socket of a helper that still serves")]
    public void The_helpers_socket(string how)
    {
        string dir = $"/dev/shm/sockshim-test-sock-{_id}";
        string atk = $"/dev/shm/sockshim-test-sockatk-{_id}";
        string config = Path.Combine(dir, "helper.json");
        var started = new List<Process>();
        try
        {
            Directory.CreateDirectory(dir);
            File.SetUnixFileMode(dir, (UnixFileMode)0b111_101_101);
            File.WriteAllText(config, """{ "pools": [ { "name": "lo", "ranges": ["127.107.8.0/29"] } ], "grants": [ { "user": "root", "pools": ["lo"] } ] }""");
            string[] Serve(string socket) => ["serve", "--config", config, "--socket", socket, "--state-dir", Path.Combine(dir, "state")];
            if (how == "in a directory the attacker owns")
            {
                var (made, output) = AsAttacker($"mkdir -m 755 {atk}");
                Assert.That(made, Is.Zero, output);
                var (exit, stdout, stderr) = Programs.Run("SockShim.Interceptor", Serve($"{atk}/sub/helper.sock"), timeout: TimeSpan.FromSeconds(60));
                Assert.That(exit, Is.EqualTo(2), stdout + stderr);
                Assert.That(stderr, Does.Contain($"--socket {atk}/sub/helper.sock: {atk} is owned by uid {_uid} ({_user})").And.Not.Contain("   at "));
                Assert.That(Directory.Exists($"{atk}/sub"), Is.False, "root made nothing in the attacker's directory");
                return;
            }
            string socket = Path.Combine(dir, "sub", "helper.sock");
            string given = socket;
            if (how == "through the attacker's link")
            {
                var (linked, output) = AsAttacker($"ln -s {dir} {atk}");
                Assert.That(linked, Is.Zero, output);
                given = $"{atk}/sub/helper.sock";
            }
            var first = Programs.Start("SockShim.Interceptor", Serve(given));
            started.Add(first);
            Assert.That(Programs.Line(first), Is.EqualTo($"serving pools lo on {socket}"), "the socket's path as resolved when checked");
            if (how == "where a helper serves")
            {
                var (exit, stdout, stderr) = Programs.Run("SockShim.Interceptor", Serve(socket), timeout: TimeSpan.FromSeconds(60));
                Assert.That(exit, Is.EqualTo(2), stdout + stderr);
                Assert.That(stderr, Does.Contain($"a helper already serves on {socket}").And.Not.Contain("   at "));
                using var client = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
                client.Connect(new System.Net.Sockets.UnixDomainSocketEndPoint(socket));
                Assert.That(first.HasExited, Is.False, "the first helper still serves on its socket");
            }
        }
        finally
        {
            foreach (var p in started) { if (!p.HasExited) p.Kill(); p.Dispose(); }
            if (File.Exists(atk) || new FileInfo(atk).LinkTarget is not null) File.Delete(atk);
            RemoveDirectories(dir, atk);
        }
    }

    /// <summary>Tables and descriptions an older SockShim made 0666 could be rewritten by any
    /// account: a table is refused (the app takes no address; `status` lists it as a problem),
    /// naming what to do; a description, which SockShim writes anew, is replaced with mode 0644.</summary>
    [Test]
    public void A_table_or_description_others_may_write_is_not_trusted()
    {
        string state = $"/dev/shm/sockshim-test-oldmode-{_id}";
        string table = TablePath(state);
        try
        {
            void HoldOne()
            {
                using var holder = Programs.Start("SockShim.TestAgent", ["hold", "1"], Pool(state));
                Assert.That(Held(holder), Has.Count.EqualTo(1), () => holder.StandardError.ReadToEnd());
                holder.Kill();
                holder.WaitForExit();
            }
            HoldOne();
            Assert.That(File.Exists(table), Is.True);

            File.SetUnixFileMode(table + ".pool.json", (UnixFileMode)0b110_110_110);
            HoldOne();
            Assert.That(File.GetUnixFileMode(table + ".pool.json"), Is.EqualTo((UnixFileMode)0b110_100_100), "the description was written anew");

            File.SetUnixFileMode(table, (UnixFileMode)0b110_110_110);
            var (exit, stdout, stderr) = Programs.Run("SockShim.TestAgent", ["hold", "1"], Pool(state), timeout: TimeSpan.FromSeconds(60));
            Assert.That(exit, Is.Not.Zero, stdout);
            Assert.That(stdout, Does.Not.Contain("lease "));
            Assert.That(stderr, Does.Contain($"{table} is writable by other accounts (mode 666; an older SockShim made it so)").And.Contain($"remove the state directory {state}"));
            var (statusExit, statusOut, statusErr) = Programs.Run("SockShim.Interceptor", ["status", "--state-dir", state]);
            Assert.That(statusOut + statusErr, Does.Contain($"{table} is writable by other accounts"), "status names it");
        }
        finally { RemoveDirectories(state); }
    }
}
