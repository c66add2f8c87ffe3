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

    [Test]
    public void Four_processes_sharing_one_pool_never_hold_one_address_together()
    {
        using var t = new TestStack("127.101.11.0/27", AllocationStrategy.Random);
        string markers = Path.Combine(t.StateDirectory, "markers");
        Directory.CreateDirectory(markers);
        var env = t.Environment;
        env["AGENT_MARKERS"] = markers;
        var agents = Enumerable.Range(0, 4).Select(_ => Programs.Start("SockShim.TestAgent", ["churn", "2500"], env)).ToList();
        var outputs = agents.Select(a => a.StandardOutput.ReadToEndAsync()).ToList();
        foreach (var a in agents)
        {
            Assert.That(a.WaitForExit(TimeSpan.FromSeconds(90)), Is.True, "agent finished");
            Assert.That(a.ExitCode, Is.Zero, () => a.StandardError.ReadToEnd());
        }
        foreach (var o in outputs) Assert.That(o.Result, Does.Contain("done 2500 dups 0"));
        Assert.That(Directory.GetFiles(markers), Is.Empty);
        Assert.That(t.HeldSlots(), Is.Zero, "every address free again");
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
