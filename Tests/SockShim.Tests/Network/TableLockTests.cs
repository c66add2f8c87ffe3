using System.Diagnostics;

namespace SockShim.Tests.Network;

/// <summary>Attack 4, locks: another account can read root's table (status shows it to
/// everyone), so it can hold an advisory lock on it. SockShim takes none, so nothing waits for
/// it: root's processes claim, and status and gc run, while the lock is held.</summary>
[NonParallelizable]
public class TableLockTests
{
    [Test, CancelAfter(120_000)]
    public void A_lock_another_account_holds_on_roots_table_stops_nothing()
    {
        using var attacker = new LocalUser("ssl");
        string state = $"/dev/shm/sockshim-test-lock-{Guid.NewGuid():N}"[..38];
        var env = new Dictionary<string, string> { ["SOCKSHIM_POOL"] = "127.105.2.0/29", ["SOCKSHIM_POOLNAME"] = "locked", ["SOCKSHIM_STATEDIR"] = state };
        string table = Tables.PathOf(state, "127.105.2.0/29", "locked");
        var started = new List<Process>();
        try
        {
            var first = Programs.Start("SockShim.TestAgent", ["hold", "1"], env);
            started.Add(first);
            Assert.That(Programs.Line(first), Does.StartWith("lease "), () => first.StandardError.ReadToEnd());

            var psi = new ProcessStartInfo("setpriv") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { $"--reuid={attacker.Uid}", $"--regid={attacker.Gid}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--",
                "flock", "--exclusive", table, "sh", "-c", "echo locked; exec sleep 60" }) psi.ArgumentList.Add(a);
            var locker = Process.Start(psi)!;
            started.Add(locker);
            Assert.That(Programs.Line(locker), Is.EqualTo("locked"), () => locker.StandardError.ReadToEnd());
            using (var probe = Process.Start("flock", ["--nonblock", "--exclusive", table, "true"]))
            {
                Assert.That(probe.WaitForExit(10_000), Is.True);
                Assert.That(probe.ExitCode, Is.Not.Zero, "the attacker's lock is really held");
            }

            var second = Programs.Start("SockShim.TestAgent", ["hold", "1"], env);
            started.Add(second);
            Assert.That(Programs.Line(second), Does.StartWith("lease "), "root claims while the lock is held");
            var (statusExit, status, statusErr) = Programs.Run("SockShim.Interceptor", ["status", "--state-dir", state], timeout: TimeSpan.FromSeconds(30));
            Assert.That(statusExit, Is.Zero, statusErr);
            Assert.That(status, Does.Contain("2 held"));
            var (gcExit, gcOut, gcErr) = Programs.Run("SockShim.Interceptor", ["gc", "--state-dir", state], timeout: TimeSpan.FromSeconds(30));
            Assert.That(gcExit, Is.Zero, gcOut + gcErr);
            Assert.That(locker.HasExited, Is.False, "the lock was held throughout");
        }
        finally
        {
            foreach (var p in started) { if (!p.HasExited) p.Kill(entireProcessTree: true); p.Dispose(); }
            if (Directory.Exists(state)) Directory.Delete(state, true);
        }
    }
}
