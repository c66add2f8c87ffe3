using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using SockShim.Stack.Addressing;
using SockShim.Stack.Configuration;
using SockShim.Stack.Policy;
using SockShim.Stack.Pools;

namespace SockShim.Tests.Stack;

/// <summary>No two live holders of one address, across threads and processes; crashes leak nothing.</summary>
public class HostWideUniquenessTests
{
    [Test]
    public void Sixteen_threads_make_10000_acquisitions_with_never_two_live_holders()
    {
        // A small pool, so threads keep colliding on the same slots.
        using var t = new TestStack("127.101.10.0/26", AllocationStrategy.Random);
        var holders = new ConcurrentDictionary<IPAddress, int>();
        int duplicates = 0, acquired = 0;
        var threads = Enumerable.Range(0, 16).Select(id => new Thread(() =>
        {
            for (int i = 0; i < 625; i++)
            {
                if (!t.Pool.TryAcquire("thread", out var lease, out _)) { i--; Thread.Yield(); continue; }
                Interlocked.Increment(ref acquired);
                if (!holders.TryAdd(lease.Address, id)) Interlocked.Increment(ref duplicates);
                Thread.SpinWait(50);
                holders.TryRemove(lease.Address, out _);
                lease.Release();
            }
        })).ToList();
        threads.ForEach(th => th.Start());
        Assert.That(threads.All(th => th.Join(TimeSpan.FromSeconds(60))), Is.True, "threads finished");
        Assert.That(acquired, Is.EqualTo(10_000));
        Assert.That(duplicates, Is.Zero);
        Assert.That(t.HeldSlots(), Is.Zero, "every address free again");
    }

    /// <summary>
    /// Four processes churn through one small pool at the same time. What counts is what they
    /// acquired (each reports every address it got, not how often it tried), that they really ran
    /// together (a start barrier every process waits at, and acquisition windows with a common
    /// instant), and that no address had two holders: the O_EXCL marker each holder makes per
    /// address never exists already, and the addresses all four keep at the end, held at once, are
    /// distinct and each shows in `sockshim status` under its own holder.
    /// </summary>
    [Test, CancelAfter(180_000)]
    public void Four_processes_sharing_one_pool_never_hold_one_address_together()
    {
        const int Processes = 4, Acquisitions = 2500, Keep = 6;
        using var t = new TestStack("127.101.11.0/27", AllocationStrategy.Random);
        string markers = Path.Combine(t.StateDirectory, "markers");
        Directory.CreateDirectory(markers);
        string barrier = Path.Combine(t.StateDirectory, "barrier");
        Assert.That(Fifo.Make(barrier), Is.Zero, "mkfifo");
        var env = t.Environment;
        env["AGENT_MARKERS"] = markers;
        env["AGENT_BARRIER"] = barrier;
        var agents = Enumerable.Range(0, Processes).Select(_ => Programs.Start("SockShim.TestAgent", ["churn", Acquisitions.ToString()], env, redirectInput: true)).ToList();
        try
        {
            foreach (var a in agents) Assert.That(Programs.Line(a), Is.EqualTo("ready"), () => a.StandardError.ReadToEnd());
            // Opening the write end lets every reader's open return; each then reads, which
            // returns for all of them at once when this end is closed. Non-blocking (ENXIO while
            // no reader has it open yet), so an agent that died cannot hang the test.
            int start = -1;
            var opening = Stopwatch.StartNew();
            while ((start = Fifo.OpenWriter(barrier)) < 0 && opening.Elapsed < TimeSpan.FromSeconds(30))
                Thread.Sleep(1);
            Assert.That(start, Is.GreaterThanOrEqualTo(0), "an agent opened the barrier");
            try { foreach (var a in agents) Assert.That(Programs.Line(a), Is.EqualTo("waiting")); }
            finally { Tmds.Linux.LibC.close(start); }

            var reports = agents.Select(a =>
            {
                var lines = new List<string>();
                string? line;
                while ((line = Programs.Line(a)) is not null && !line.StartsWith("done") && !line.StartsWith("error")) lines.Add(line);
                Assert.That(line, Does.StartWith("done"), () => $"{line} {a.StandardError.ReadToEnd()}");
                return (Pid: a.Id, Lines: lines, Done: line!);
            }).ToList();

            // Held by all four at once now: distinct, and status (another process) agrees.
            var kept = reports.SelectMany(r => r.Lines.Where(l => l.StartsWith("holding ")).Select(l => (Address: l[8..], r.Pid))).ToList();
            Assert.That(kept, Has.Count.EqualTo(Processes * Keep), "each process keeps what it said");
            Assert.That(kept.Select(k => k.Address).Distinct().Count(), Is.EqualTo(kept.Count), "no address is kept by two processes");
            var (statusExit, status, statusErr) = Programs.Run("SockShim.Interceptor", ["status", "--json", "--state-dir", t.StateDirectory]);
            Assert.That(statusExit, Is.Zero, statusErr);
            var rows = System.Text.Json.JsonDocument.Parse(status).RootElement.EnumerateArray()
                .Select(r => (Address: r.GetProperty("address").GetString()!, Pid: r.GetProperty("pid").GetInt32(), Alive: r.GetProperty("alive").GetBoolean())).ToList();
            Assert.That(rows.Select(r => (r.Address, r.Pid)), Is.EquivalentTo(kept), "status lists exactly the kept addresses, each under its holder");
            Assert.That(rows.All(r => r.Alive), Is.True);

            // What they acquired, not how often they tried.
            var pool = t.Pool.Definition;
            foreach (var r in reports)
            {
                var got = r.Lines.Where(l => l.StartsWith("got ")).Select(l => IPAddress.Parse(l[4..])).ToList();
                Assert.That(r.Done, Is.EqualTo($"done {Acquisitions} dups 0"), "the marker of every address was free when it was acquired");
                Assert.That(got, Has.Count.EqualTo(Acquisitions), "every acquisition is reported");
                Assert.That(got.All(a => pool.IndexOf(a) >= 0), Is.True, "from the pool");
                Assert.That(got.Distinct().Count(), Is.GreaterThan(1), "it went through the pool");
            }
            Assert.That(reports.Sum(r => r.Lines.Count(l => l.StartsWith("got "))), Is.EqualTo(Processes * Acquisitions));

            // Each window runs from its first to its last acquisition: one instant inside all four
            // (the latest start before the earliest end) proves they acquired at the same time.
            var windows = reports.Select(r => r.Lines.Single(l => l.StartsWith("window ")).Split(' ')).Select(f => (Start: long.Parse(f[1]), End: long.Parse(f[2]))).ToList();
            long origin = windows.Min(w => w.Start);
            TestContext.Out.WriteLine("acquisition windows (ms after the first): " + string.Join(", ", windows.Select(w => $"{(w.Start - origin) / 1e6:F1}-{(w.End - origin) / 1e6:F1}")));
            Assert.That(windows.Max(w => w.Start), Is.LessThan(windows.Min(w => w.End)),
                () => "acquisition windows (CLOCK_MONOTONIC ns): " + string.Join(", ", windows));

            foreach (var a in agents) a.StandardInput.WriteLine("release");
            foreach (var a in agents)
            {
                Assert.That(a.WaitForExit(TimeSpan.FromSeconds(30)), Is.True, "agent finished");
                Assert.That(a.ExitCode, Is.Zero, () => a.StandardError.ReadToEnd());
            }
            Assert.That(Directory.GetFiles(markers), Is.Empty);
            Assert.That(t.HeldSlots(), Is.Zero, "every address free again");
        }
        finally
        {
            foreach (var a in agents) { if (!a.HasExited) a.Kill(); a.Dispose(); }
        }
    }

    [Test]
    public void A_process_killed_with_SIGKILL_leaves_its_addresses_to_the_next_process()
    {
        using var t = new TestStack("127.101.12.0-127.101.12.7");
        using var agent = Programs.Start("SockShim.TestAgent", ["hold", "8"], t.Environment);
        var held = new List<string>();
        string? line;
        while ((line = agent.StandardOutput.ReadLine()) is not null && line != "held")
            if (line.StartsWith("lease ")) held.Add(line[6..]);
        Assert.That(held, Has.Count.EqualTo(8), "the agent holds the whole pool");
        Assert.That(t.Pool.TryAcquire("while held", out _, out var busy), Is.False, "nothing free while the agent lives");
        Assert.That(busy!.Message, Does.Contain("exhausted"));

        agent.Kill(); // SIGKILL: no exit handlers run
        Assert.That(agent.WaitForExit(TimeSpan.FromSeconds(10)), Is.True);

        var mine = new List<string>();
        for (int i = 0; i < 8; i++)
        {
            Assert.That(t.Pool.TryAcquire("after kill", out var lease, out var error), Is.True, error?.Message);
            mine.Add(lease.Address.ToString());
        }
        Assert.That(mine, Is.EquivalentTo(held));
    }

    [Test]
    public void A_process_that_exits_without_closing_its_sockets_releases_them_at_exit()
    {
        using var t = new TestStack("127.101.13.0/29");
        var (exit, stdout, _) = Programs.Run("SockShim.TestAgent", ["leak", "5"], t.Environment);
        Assert.That(exit, Is.Zero, stdout);
        Assert.That(stdout, Does.Contain("leaked 5"));
        Assert.That(t.HeldSlots(), Is.Zero);
    }
}

/// <summary>The start barrier of the multi-process tests: a FIFO the agents read.</summary>
internal static unsafe class Fifo
{
    public static int Make(string path)
    {
        fixed (byte* p = System.Text.Encoding.UTF8.GetBytes(path + "\0")) return Tmds.Linux.LibC.mkfifo(p, 0b110_000_000);
    }

    /// <summary>The write end, or -1 (ENXIO) while no reader has the FIFO open.</summary>
    public static int OpenWriter(string path)
    {
        fixed (byte* p = System.Text.Encoding.UTF8.GetBytes(path + "\0"))
            return Tmds.Linux.LibC.open(p, Tmds.Linux.LibC.O_WRONLY | Tmds.Linux.LibC.O_NONBLOCK | Tmds.Linux.LibC.O_CLOEXEC);
    }
}
