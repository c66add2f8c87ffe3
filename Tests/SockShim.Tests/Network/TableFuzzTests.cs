using System.Diagnostics;
using System.Text.RegularExpressions;

namespace SockShim.Tests.Network;

/// <summary>
/// A live table rewritten at random while processes churn through its pool, all as one
/// unprivileged account (the only one that can write its tables): no process crashes or reads
/// outside the mapping, no address ever has two live holders (each holder proves its address
/// by a TCP listener on it, which a second holder could not bind), and while the header is
/// broken the pool fails closed with an error naming the table, then works again. Churners are
/// short-lived and restarted, because a new process reclaims what it takes for dead holders:
/// that is where a forged owner word would hand a live holder's address to someone else.
/// </summary>
[NonParallelizable]
public class TableFuzzTests
{
    private const int Churners = 4;

    [Test, CancelAfter(180_000)]
    public void A_table_rewritten_at_random_never_gives_one_address_two_holders()
    {
        using var user = new LocalUser("ssf");
        string state = $"/dev/shm/sockshim-test-fuzz-{Guid.NewGuid():N}"[..40];
        var env = new Dictionary<string, string> { ["SOCKSHIM_POOL"] = "127.106.0.0/22", ["SOCKSHIM_POOLNAME"] = "fuzz", ["SOCKSHIM_STATEDIR"] = state };
        string table = Tables.PathOf(state, "127.106.0.0/22", "fuzz");
        var started = new List<Process>();
        try
        {
            var churners = new List<(Process P, Task<string> Out, Task<string> Err)>();
            void StartChurner()
            {
                var p = user.Start("SockShim.TestAgent", ["fuzz-churn", "1.5", "47100"], env);
                started.Add(p);
                churners.Add((p, p.StandardOutput.ReadToEndAsync(), p.StandardError.ReadToEndAsync()));
            }
            var lanes = Enumerable.Range(0, Churners).Select(_ => { StartChurner(); return churners[^1].P; }).ToArray();
            var wait = Stopwatch.StartNew();
            while (!File.Exists(table) && wait.Elapsed < TimeSpan.FromSeconds(30) && !started.Any(p => p.HasExited)) Thread.Sleep(20);
            Assert.That(File.Exists(table), Is.True, $"the churners made {table}");
            var fuzzer = user.Start("SockShim.TestAgent", ["fuzz-table", table, "8"]);
            started.Add(fuzzer);
            var fuzzOut = fuzzer.StandardOutput.ReadToEndAsync();
            var fuzzErr = fuzzer.StandardError.ReadToEndAsync();
            // Each lane starts a new churner when its last one ends, while the fuzzer runs.
            var lanesUntil = Stopwatch.StartNew();
            while (!fuzzer.HasExited && lanesUntil.Elapsed < TimeSpan.FromSeconds(60))
            {
                for (int i = 0; i < lanes.Length; i++)
                    if (lanes[i].HasExited) { StartChurner(); lanes[i] = churners[^1].P; }
                Thread.Sleep(20);
            }
            foreach (var p in started) Assert.That(p.WaitForExit(120_000), Is.True, "every process finished");
            Assert.That(fuzzer.ExitCode, Is.Zero, fuzzOut.Result + fuzzErr.Result);
            foreach (var (p, o, e) in churners)
                Assert.That(p.ExitCode, Is.Zero, $"a churner exited cleanly (no crash, no SIGBUS or SIGSEGV): {o.Result}{e.Result}");
            Assert.That(churners, Has.Count.GreaterThan(2 * Churners), "churners came and went while the table was rewritten");

            string fuzzed = fuzzOut.Result;
            var f = Regex.Match(fuzzed, @"writes (\d+) forged (\d+) breaks (\d+)");
            Assert.That(f.Success, Is.True, fuzzed);
            Assert.That(int.Parse(f.Groups[1].Value), Is.GreaterThan(100), "random writes into the live table");
            Assert.That(int.Parse(f.Groups[2].Value), Is.GreaterThan(100), "live claims forged");
            Assert.That(int.Parse(f.Groups[3].Value), Is.GreaterThan(5), "moments with the header broken");

            int acquired = 0, dups = 0, damaged = 0, other = 0;
            foreach (var (_, o, _) in churners)
            {
                string text = o.Result;
                var m = Regex.Match(text, @"acquired (\d+) dups (\d+) damaged (\d+) exhausted (\d+) other (\d+)");
                Assert.That(m.Success, Is.True, text);
                acquired += int.Parse(m.Groups[1].Value);
                dups += int.Parse(m.Groups[2].Value);
                damaged += int.Parse(m.Groups[3].Value);
                other += int.Parse(m.Groups[5].Value);
                Assert.That(text, Does.Not.Contain("dup "), "a second live holder of an address");
                foreach (Match d in Regex.Matches(text, "^damaged (.*)$", RegexOptions.Multiline))
                    Assert.That(d.Groups[1].Value, Does.Contain($"pool 'fuzz': lease table {table} is damaged").And.Contain("remove the file when no process uses the pool"));
            }
            Assert.That(dups, Is.Zero, "no address had two live holders");
            Assert.That(other, Is.Zero, "every failure was the pool failing closed or running dry");
            Assert.That(acquired, Is.GreaterThan(200), "the churners took addresses while the table was rewritten");
            Assert.That(damaged, Is.GreaterThan(0), "the pool failed closed while its header was broken");

            // The header restored, the same pool serves again, and status reads the table.
            var after = user.Start("SockShim.TestAgent", ["fuzz-churn", "1", "47101"], env);
            started.Add(after);
            string again = after.StandardOutput.ReadToEnd();
            Assert.That(after.WaitForExit(60_000), Is.True);
            Assert.That(again, Does.Match(@"acquired [1-9]\d* dups 0 damaged 0"), again + after.StandardError.ReadToEnd());
            var status = user.Start("SockShim.Interceptor", ["status", "--state-dir", state]);
            started.Add(status);
            string statusOut = status.StandardOutput.ReadToEnd() + status.StandardError.ReadToEnd();
            Assert.That(status.WaitForExit(60_000), Is.True);
            Assert.That(status.ExitCode, Is.Zero, statusOut);
            Assert.That(statusOut, Does.Not.Contain("   at "));
            Assert.That(statusOut, Does.Contain("damaged: its slot was written by something other than SockShim"), "status names the forged slots");
        }
        finally
        {
            foreach (var p in started) { if (!p.HasExited) p.Kill(entireProcessTree: true); p.Dispose(); }
            if (Directory.Exists(state)) Directory.Delete(state, true);
        }
    }
}
