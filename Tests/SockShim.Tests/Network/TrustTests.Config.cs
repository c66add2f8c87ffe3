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
                Assert.That(stderr.Trim().Split('\n'), Has.Length.LessThanOrEqualTo(3), "a short message, no stack trace");
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
            foreach (var verb in new[] { "status", "gc" })
            {
                Directory.CreateDirectory(state); // as the attacker could have made it appear, so the verbs look inside
                var (verbExit, verbOut, verbErr) = Programs.Run("SockShim.Interceptor", [verb, "--state-dir", state]);
                Assert.That(verbExit, Is.EqualTo(2), $"{verb}: {verbOut}{verbErr}");
                Assert.That(verbErr, Does.Contain(expected).And.Not.Contain("   at "), verb);
                Directory.Delete(state);
            }
            Assert.That(Directory.GetFileSystemEntries(parent), Is.Empty, "nothing was made in it");
        }
        finally
        {
            if (holder is { HasExited: false }) holder.Kill();
            holder?.Dispose();
            RemoveDirectories(parent);
        }
    }
}
