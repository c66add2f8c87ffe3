using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Tmds.Linux;

namespace SockShim.Tests.Network;

/// <summary>
/// `sockshim gc` racing processes that take and give back addresses on a real interface: gc
/// must remove what killed holders left and never an address a live process holds. Checked from
/// outside after every round: `ip addr` of the interface, `sockshim status`, and what each agent
/// logged it holds.
/// </summary>
[NonParallelizable]
public class GcRaceTests
{
    private const string Link = "g0", Prefix = "198.51.100.";
    private const int Agents = 4, Rounds = 24;

    private sealed class Agent(Process process, string log)
    {
        public Process Process { get; } = process;
        public string Log { get; } = log;

        /// <summary>What the agent holds by its log: "take A" once A is on the host, "drop A"
        /// before it gives A back. Exact while the agent is stopped or dead.</summary>
        public HashSet<string> Held()
        {
            var held = new HashSet<string>();
            foreach (var line in File.ReadAllLines(Log))
            {
                if (line.StartsWith("take ")) held.Add(line[5..]);
                else if (line.StartsWith("drop ")) held.Remove(line[5..]);
            }
            return held;
        }

        public int Takes => File.ReadAllLines(Log).Count(l => l.StartsWith("take "));

        public bool Started => File.ReadAllText(Log).StartsWith("started");

        /// <summary>Whether the (stopped) agent is inside a release: a "drop" not yet "gone".</summary>
        public bool Releasing => File.ReadAllLines(Log).Aggregate(0, (open, l) => l.StartsWith("drop ") ? open + 1 : l.StartsWith("gone ") ? open - 1 : open) > 0;
    }

    /// <summary>
    /// Four agents take up to four addresses each from a netlink pool on a veth interface (large
    /// enough never to run out, so an agent reclaims nothing itself and the dead are gc's), hold
    /// each up to 300 ms and give it back, while gc runs again and again; every other round one
    /// agent is SIGKILLed (its addresses stay on the interface and its slots in the table: gc's
    /// work) and replaced. After each gc, with the agents stopped (SIGSTOP) so what they hold
    /// stands still: every address a live agent holds is on the interface and listed by status
    /// under that agent, live; no slot is a killed agent's. At the end, with every agent killed,
    /// one gc leaves nothing of the pool on the interface or in the table.
    /// </summary>
    [Test, CancelAfter(300_000)]
    public void Gc_in_a_loop_never_takes_a_live_holders_address_and_removes_the_dead_ones()
    {
        TwoHosts.RequireRoot();
        using var ns = new TestNamespace("ssg");
        TwoHosts.Ip($"-n {ns.Name} link add {Link} type veth peer name g1");
        TwoHosts.Ip($"-n {ns.Name} link set {Link} up");
        TwoHosts.Ip($"-n {ns.Name} link set g1 up");
        string logs = $"/dev/shm/sockshim-test-gcrace-logs-{Guid.NewGuid().ToString("N")[..8]}";
        Directory.CreateDirectory(logs);
        var env = new Dictionary<string, string>
        {
            ["SOCKSHIM_POOL"] = Prefix + "0/26", ["SOCKSHIM_POOLNAME"] = "race", ["SOCKSHIM_PROVISIONER"] = "netlink",
            ["SOCKSHIM_INTERFACE"] = Link, ["SOCKSHIM_STATEDIR"] = ns.StateDirectory,
            // The lowest free address: a slot given back is taken again at once, the hardest case
            // for a gc that decided on an earlier look at the slot.
            ["SOCKSHIM_STRATEGY"] = "Sequential",
        };
        var live = new List<Agent>();
        var killed = new List<Agent>();
        int started = 0;
        Agent Start()
        {
            string log = Path.Combine(logs, $"agent{started++}");
            File.WriteAllText(log, "");
            return new Agent(TwoHosts.StartIn(ns.Name, "SockShim.TestAgent", ["cycle", "4", log], env), log);
        }
        (int Exit, string Out, string Err) Sockshim(params string[] args) => TwoHosts.RunIn(ns.Name, "SockShim.Interceptor", [.. args, "--state-dir", ns.StateDirectory]);
        List<string> OnLink() => TwoHosts.Ip($"-n {ns.Name} -o -4 addr show dev {Link}").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[3].Split('/')[0]).Where(a => a.StartsWith(Prefix)).ToList();
        List<(string Address, int Pid, bool Alive)> Status()
        {
            var (exit, output, error) = Sockshim("status", "--json");
            Assert.That(exit, Is.Zero, error);
            return JsonDocument.Parse(output).RootElement.EnumerateArray()
                .Select(r => (r.GetProperty("address").GetString()!, r.GetProperty("pid").GetInt32(), r.GetProperty("alive").GetBoolean())).ToList();
        }

        try
        {
            for (int i = 0; i < Agents; i++) live.Add(Start());
            // gc refuses a state directory that is not there yet: the agents make it and their table.
            var deadline = Stopwatch.StartNew();
            foreach (var agent in live)
                while (!agent.Started)
                {
                    Assert.That(agent.Process.HasExited, Is.False, () => agent.Process.StandardError.ReadToEnd());
                    Assert.That(deadline.Elapsed, Is.LessThan(TimeSpan.FromSeconds(60)), "the agents started");
                    Thread.Sleep(10);
                }
            int removed = 0, orphansRemoved = 0;
            for (int round = 0; round < Rounds && deadline.Elapsed < TimeSpan.FromMinutes(3); round++)
            {
                if (round % 2 == 1 && KillOutsideRelease([live[round / 2 % live.Count]]) is [var victim])
                {
                    live.Remove(victim);
                    killed.Add(victim);
                    live.Add(Start());
                }
                var orphansBefore = killed.SelectMany(k => k.Held()).ToHashSet();
                var onLinkBefore = OnLink();

                // gc while the agents run.
                var (exit, output, error) = Sockshim("gc");
                Assert.That(exit, Is.Zero, $"round {round}: gc failed: {output}{error}");
                removed += Regex.Matches(output, "^removed ", RegexOptions.Multiline).Count;

                Freeze(live);
                try
                {
                    var onLink = OnLink();
                    var status = Status();
                    foreach (var agent in live)
                        foreach (var address in agent.Held())
                        {
                            Assert.That(onLink, Does.Contain(address), $"round {round}: live agent {agent.Process.Id} holds {address}, but it is gone from {Link}; gc said: {output}");
                            Assert.That(status, Does.Contain((address, agent.Process.Id, true)), $"round {round}: status lists {address} under its live holder {agent.Process.Id}");
                        }
                    var deadPids = killed.Select(a => a.Process.Id).ToHashSet();
                    Assert.That(status.Where(s => deadPids.Contains(s.Pid)), Is.Empty, $"round {round}: gc freed every slot of a killed agent");
                    // A killed agent's address may outlive one gc: a live agent that tries its
                    // freed slot, finds the address still there and looks further holds the slot
                    // for that moment, and gc skips a held slot. The last gc, with no agent left,
                    // shows that none stays for good.
                    orphansRemoved += orphansBefore.Count(o => onLinkBefore.Contains(o) && Regex.IsMatch(output, $"^removed {Regex.Escape(o)} ", RegexOptions.Multiline));
                }
                finally { Thaw(live); }
            }

            var ending = Stopwatch.StartNew();
            while (live.Count > 0)
            {
                Assert.That(ending.Elapsed, Is.LessThan(TimeSpan.FromSeconds(30)), "every agent was killed outside a release");
                foreach (var agent in KillOutsideRelease(live)) { live.Remove(agent); killed.Add(agent); }
            }
            var (lastExit, lastOutput, lastError) = Sockshim("gc");
            Assert.That(lastExit, Is.Zero, lastOutput + lastError);
            Assert.That(OnLink(), Is.Empty, "with every holder dead, gc took every address of the pool off the link");
            Assert.That(Status(), Is.Empty, "and freed every slot");
            TestContext.Out.WriteLine($"{killed.Count} agents took {killed.Sum(k => k.Takes)} addresses; gc removed {removed}, {orphansRemoved} of them left by killed agents");
            // The race had something to race about.
            Assert.That(killed.Sum(k => k.Takes), Is.GreaterThan(200), "the agents took addresses");
            Assert.That(orphansRemoved, Is.GreaterThan(0), $"gc removed addresses killed agents left ({removed} removals in all)");
        }
        finally
        {
            foreach (var agent in live.Concat(killed))
            {
                if (!agent.Process.HasExited) { LibC.kill(agent.Process.Id, LibC.SIGCONT); agent.Process.Kill(); }
                agent.Process.Dispose();
            }
            Directory.Delete(logs, true);
        }
    }

    /// <summary>
    /// SIGKILLs those of <paramref name="agents"/> that are not inside a release, and returns
    /// them; what they hold stays on the link and in the table, gc's work. Not inside a release:
    /// a release first marks its slot "being released" (owner word -1), and a process killed
    /// there leaves a mark that nothing reclaims today (the liveness check cannot tell pid -1,
    /// and must not: a live releaser's mark looks the same), a fault of the claim table, not of gc.
    /// </summary>
    private static List<Agent> KillOutsideRelease(List<Agent> agents)
    {
        Freeze(agents);
        // Started: past the reclaim a pool makes when it opens (a release of dead holders' slots).
        var victims = agents.Where(a => a.Started && !a.Releasing).ToList();
        foreach (var a in victims) a.Process.Kill(); // SIGKILL ends a stopped process too
        foreach (var a in victims) Assert.That(a.Process.WaitForExit(TimeSpan.FromSeconds(10)), Is.True, $"agent {a.Process.Id} died");
        Thaw(agents.Except(victims).ToList());
        return victims;
    }

    /// <summary>Stops the agents (SIGSTOP) and waits until every thread of each is stopped, so
    /// what they hold stands still while it is compared.</summary>
    private static void Freeze(List<Agent> agents)
    {
        foreach (var a in agents) Assert.That(LibC.kill(a.Process.Id, LibC.SIGSTOP), Is.Zero, $"SIGSTOP {a.Process.Id}");
        var waited = Stopwatch.StartNew();
        foreach (var a in agents)
            while (!Stopped(a.Process.Id))
            {
                Assert.That(waited.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)), $"agent {a.Process.Id} stopped");
                Thread.Sleep(1);
            }
    }

    private static void Thaw(List<Agent> agents)
    {
        foreach (var a in agents) LibC.kill(a.Process.Id, LibC.SIGCONT);
    }

    // Every thread in state T (stopped); a thread that exited meanwhile is not waited for.
    private static bool Stopped(int pid) => Directory.GetDirectories($"/proc/{pid}/task").All(task =>
    {
        string stat;
        try { stat = File.ReadAllText(Path.Combine(task, "stat")); }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException) { return true; }
        return stat[(stat.LastIndexOf(')') + 2)..].StartsWith('T');
    });
}
