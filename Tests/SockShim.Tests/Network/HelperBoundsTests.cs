using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace SockShim.Tests.Network;

/// <summary>
/// `sockshim serve` against an unprivileged attacker (a user of its own, no capability, no
/// grant) who can connect to its socket: connections are bounded per user and in all, idle or
/// half-sent ones are dropped after the idle timeout, running out of descriptors does not spin
/// the accept loop; a legitimate user (another account, with a grant) is served all along, seen
/// from outside (`ip addr`). And a user's quota comes back however a lease ends, also when the
/// DHCP server takes it back.
/// </summary>
[NonParallelizable]
public class HelperBoundsTests
{
    private TwoHosts _hosts = null!;
    private string _dir = "";
    private readonly List<string> _users = new();
    private (uint Uid, uint Gid) _attacker, _legit, _outsider;
    private string _legitName = "";
    private int _helpers;

    [OneTimeSetUp]
    public void Start()
    {
        TwoHosts.RequireRoot();
        _hosts = new TwoHosts();
        TwoHosts.Ip($"-n {_hosts.B} route add 198.51.100.0/24 via 192.0.2.1");
        _dir = Directory.CreateTempSubdirectory("sockshim-helper-bounds-").FullName;
        File.SetUnixFileMode(_dir, (UnixFileMode)0b111_101_101);
        _attacker = User("ssx");
        _legit = User("ssl");
        _legitName = _users[1];
        _outsider = User("sso");
        var echo = TwoHosts.StartIn(_hosts.B, "EchoServer", ["--listen", "192.0.2.2:7200", "--timeout", "300"]);
        Assert.That(Programs.Line(echo), Does.StartWith("listening"));
    }

    private (uint, uint) User(string prefix)
    {
        string name = prefix + Guid.NewGuid().ToString("N")[..8];
        TwoHosts.Run("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name]);
        _users.Add(name);
        return (uint.Parse(TwoHosts.Run("id", ["-u", name]).Trim()), uint.Parse(TwoHosts.Run("id", ["-g", name]).Trim()));
    }

    [OneTimeTearDown]
    public void Stop()
    {
        _hosts?.Dispose();
        foreach (var user in _users) TwoHosts.Run("userdel", [user]);
        if (_dir != "") Directory.Delete(_dir, true);
    }

    /// <summary>A helper of this test's own, with its log, state directory and socket.</summary>
    private sealed class Helper : IDisposable
    {
        public required Process Process { get; init; }
        public required string Socket { get; init; }
        public required string State { get; init; }
        public readonly StringBuilder Output = new();
        public string Log() { lock (Output) return Output.ToString(); }

        public void Dispose()
        {
            if (!Process.HasExited) Process.Kill(entireProcessTree: true);
            Process.WaitForExit(10_000);
            Process.Dispose();
            if (Directory.Exists(State)) Directory.Delete(State, true);
        }
    }

    private Helper StartHelper(string ns, string pools, string pool, int quota, params string[] options)
    {
        int n = ++_helpers;
        string config = Path.Combine(_dir, $"helper{n}.json");
        File.WriteAllText(config, $$"""{ "pools": [ {{pools}} ], "grants": [ { "user": "{{_legitName}}", "pools": ["{{pool}}"], "quota": {{quota}} } ] }""");
        string socket = Path.Combine(_dir, $"helper{n}.sock"), state = $"/dev/shm/sockshim-test-bounds-{Guid.NewGuid().ToString("N")[..8]}";
        var process = TwoHosts.StartIn(ns, "SockShim.Interceptor", ["serve", "--config", config, "--socket", socket, "--state-dir", state, .. options]);
        var helper = new Helper { Process = process, Socket = socket, State = state };
        process.ErrorDataReceived += (_, e) => { lock (helper.Output) helper.Output.AppendLine(e.Data); };
        process.BeginErrorReadLine();
        Assert.That(Programs.Line(process), Does.StartWith("serving pools "), helper.Log);
        return helper;
    }

    private Helper StartNicHelper(params string[] options) => StartHelper(_hosts.A,
        $$"""{ "name": "nic", "ranges": ["198.51.100.0/24"], "exclude": ["198.51.100.0"], "provisioner": "netlink", "interface": "{{TwoHosts.LinkA}}" }""", "nic", 5, options);

    /// <summary>The attacker's (or a user's) idle connections, and what became of each.</summary>
    private sealed class Flood : IDisposable
    {
        private readonly Process _process;
        private readonly ConcurrentQueue<string> _lines = new();

        public Flood((uint Uid, uint Gid) user, string socket, int count, string mode, string dir)
        {
            _process = Unprivileged.Start(null, user.Uid, user.Gid, "SockShim.TestAgent", ["unix-connections", socket, count.ToString(), mode],
                new Dictionary<string, string> { ["DOTNET_CLI_HOME"] = dir });
            _process.OutputDataReceived += (_, e) => { if (e.Data is not null) _lines.Enqueue(e.Data); };
            _process.BeginOutputReadLine();
            Assert.That(DhcpLan.Eventually(() => _lines.Contains($"opened {count}"), TimeSpan.FromSeconds(30)), Is.True, () => $"all {count} connected: {string.Join(" | ", _lines)}");
        }

        /// <summary>The answers a greedy connection read, in order.</summary>
        public List<string> Answers() => _lines.Where(l => l.StartsWith("answer ")).Select(l => l.Split(' ', 3)[2]).ToList();

        /// <summary>Connections the helper closed: after how long, and what it said first.</summary>
        public List<(long Ms, string Said)> Closed() => _lines.Where(l => l.StartsWith("closed ")).Select(l => l.Split(' ', 4))
            .Select(f => (long.Parse(f[2]), f.Length > 3 ? f[3] : "")).ToList();

        public void Dispose()
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
            _process.Dispose();
        }
    }

    private Process LegitAgent(string ns, string socket, string pool, IEnumerable<string> args) =>
        Unprivileged.Start(ns, _legit.Uid, _legit.Gid, "SockShim.TestAgent", args, new Dictionary<string, string>
        {
            ["SOCKSHIM_HELPER"] = socket, ["SOCKSHIM_POOLNAME"] = pool, ["SOCKSHIM_STATEDIR"] = _hosts.StateDirectory, ["DOTNET_CLI_HOME"] = _dir,
        });

    [Test, CancelAfter(150_000)]
    public void An_attackers_connections_are_bounded_and_dropped_when_idle_while_another_user_is_served()
    {
        const int perUser = 8, total = 12, idleSeconds = 8, flood = 40;
        using var helper = StartNicHelper("--max-connections", $"{total}", "--max-connections-per-user", $"{perUser}", "--idle-timeout", $"{idleSeconds}");
        using var attack = new Flood(_attacker, helper.Socket, flood, "partial", _dir);

        // What is over the attacker's bound is closed at once, saying why.
        Assert.That(DhcpLan.Eventually(() => attack.Closed().Count >= flood - perUser, TimeSpan.FromSeconds(10)), Is.True, () => $"{attack.Closed().Count} closed; {helper.Log()}");
        var refused = attack.Closed();
        Assert.That(refused, Has.Count.EqualTo(flood - perUser), "the attacker keeps exactly its bound");
        Assert.That(refused.Select(r => r.Said), Has.All.StartWith($"ERR busy uid {_attacker.Uid} already has {perUser} connections to the helper"));
        Assert.That(refused.Select(r => r.Ms), Has.All.LessThan(idleSeconds * 1000), "refused at once, not left to time out");

        // Meanwhile another user is served: its address is on the interface.
        using var agent = LegitAgent(_hosts.A, helper.Socket, "nic", ["sockets", "1", "192.0.2.2:7200", "tcp"]);
        var (addresses, error) = HelperTests.Read(agent);
        Assert.That(error, Is.Null, helper.Log);
        var served = Stopwatch.StartNew();
        Assert.That(addresses, Has.Count.EqualTo(1));
        Assert.That(_hosts.AddressesOnA(), Does.Contain(addresses[0]), "ip addr: the helper put it on vA");

        // The bound in all: 8 + 1 connected, so 3 more of anyone's are taken, the rest refused.
        using (var more = new Flood(_legit, helper.Socket, 5, "silent", _dir))
        {
            Assert.That(DhcpLan.Eventually(() => more.Closed().Count >= 2, TimeSpan.FromSeconds(10)), Is.True, helper.Log);
            Assert.That(attack.Closed(), Has.Count.EqualTo(flood - perUser), "(the attacker's idle connections were all still open then)");
            Assert.That(more.Closed().Select(r => r.Said).ToList(), Has.Count.EqualTo(2).And.All.StartWith($"ERR busy the helper already has {total} connections, its maximum"));
        }

        // The attacker's idle connections (silent, or a request cut short) go after the idle timeout, not before.
        Assert.That(DhcpLan.Eventually(() => attack.Closed().Count == flood, TimeSpan.FromSeconds(idleSeconds + 10)), Is.True, () => $"{attack.Closed().Count} closed");
        var idle = attack.Closed().Where(c => !c.Said.StartsWith("ERR busy")).ToList();
        Assert.That(idle, Has.Count.EqualTo(perUser));
        Assert.That(idle.Select(c => c.Ms), Has.All.InRange(idleSeconds * 1000 - 50, idleSeconds * 1000 + 5000), "closed at the idle timeout");
        Assert.That(idle.Select(c => c.Said), Has.All.Empty, "closed without an answer");
        Assert.That(DhcpLan.Eventually(() => helper.Log().Contains("sent nothing while holding no address") && helper.Log().Contains("stopped in the middle of a request")
            && helper.Log().Contains($"connection refused: uid {_attacker.Uid} already has {perUser} connections"), TimeSpan.FromSeconds(5)), Is.True, helper.Log);

        // A connection that holds an address may wait between requests: past the idle timeout
        // it still holds it (only time can show that something did not happen).
        var left = TimeSpan.FromSeconds(idleSeconds + 2) - served.Elapsed;
        if (left > TimeSpan.Zero) Thread.Sleep(left);
        Assert.That(_hosts.AddressesOnA(), Does.Contain(addresses[0]), "the served user's address stayed");
        Assert.That(helper.Log(), Does.Not.Contain("disconnected: released"), "its connection was not dropped");
        agent.StandardInput.WriteLine("close");
        Assert.That(agent.WaitForExit(20_000), Is.True);
        Assert.That(helper.Process.HasExited, Is.False);
    }

    /// <summary>The third review: accounts no grant names (any number of them: an account with
    /// subordinate uids connects as thousands) filled all of the helper's connections by asking
    /// what a pool is every few seconds, so no granted user was served; and one such account wrote
    /// 21 MB of log a second with malformed requests. Now they share a few places (here 4 of 12),
    /// each kept no longer than the idle timeout however much it says; a granted user finds the
    /// rest and is served; a connection is closed after 16 refused requests, and the log holds a
    /// few lines for them, not one a request.</summary>
    [Test, CancelAfter(150_000)]
    public void Accounts_no_grant_names_share_a_few_connections_for_a_while_and_cannot_flood_the_log()
    {
        const int total = 12, perUser = 8, ungranted = 4, idleSeconds = 6;
        using var helper = StartNicHelper("--max-connections", $"{total}", "--max-connections-per-user", $"{perUser}",
            "--max-ungranted-connections", $"{ungranted}", "--idle-timeout", $"{idleSeconds}");
        string full = $"ERR busy the helper already has {ungranted} connections of accounts no grant names, the most it keeps for them";

        using (var chatty = new Flood(_attacker, helper.Socket, perUser, "chatty", _dir))
        using (var other = new Flood(_outsider, helper.Socket, perUser, "silent", _dir))
        {
            // Of the two accounts' 16, four are kept; the rest are told why at once.
            Assert.That(DhcpLan.Eventually(() => chatty.Closed().Count + other.Closed().Count >= 2 * perUser - ungranted, TimeSpan.FromSeconds(10)), Is.True, helper.Log);
            var refused = chatty.Closed().Concat(other.Closed()).ToList();
            Assert.That(refused, Has.Count.EqualTo(2 * perUser - ungranted), "four kept in all");
            Assert.That(refused.Select(r => r.Said), Has.All.StartWith(full));

            // A granted user has the other eight places: six idle connections, one asking what the
            // pool is every second, and one served.
            using var mine = new Flood(_legit, helper.Socket, total - ungranted - 2, "silent", _dir);
            using var asking = new Flood(_legit, helper.Socket, 1, "chatty", _dir);
            using var agent = LegitAgent(_hosts.A, helper.Socket, "nic", ["sockets", "1", "192.0.2.2:7200", "tcp"]);
            var (addresses, error) = HelperTests.Read(agent);
            Assert.That(error, Is.Null, helper.Log);
            Assert.That(_hosts.AddressesOnA(), Does.Contain(addresses.Single()), "ip addr: the granted user was served");
            Assert.That(mine.Closed().Select(c => c.Said), Has.None.StartWith("ERR busy"), "none of the granted user's connections was refused");
            agent.StandardInput.WriteLine("close");
            Assert.That(agent.WaitForExit(20_000), Is.True);

            // Asking again and again keeps no connection of theirs past the idle timeout.
            Assert.That(DhcpLan.Eventually(() => chatty.Closed().Count + other.Closed().Count == 2 * perUser, TimeSpan.FromSeconds(idleSeconds + 10)), Is.True, helper.Log);
            var kept = chatty.Closed().Concat(other.Closed()).Where(c => !c.Said.StartsWith(full)).ToList();
            Assert.That(kept, Has.Count.EqualTo(ungranted));
            Assert.That(kept.Select(c => c.Ms), Has.All.InRange(idleSeconds * 1000 - 50, idleSeconds * 1000 + 5000), "closed when their time was up");
            Assert.That(chatty.Closed().Where(c => !c.Said.StartsWith(full)).Select(c => c.Said), Has.Some.Contain("OK {"), "the chatty ones were answered while kept");
            // Neither does a granted user's connection that holds nothing (the fifth review: one
            // asking every few seconds was kept for ever).
            Assert.That(DhcpLan.Eventually(() => asking.Closed().Count == 1, TimeSpan.FromSeconds(idleSeconds + 10)), Is.True, helper.Log);
            Assert.That(asking.Closed().Single().Ms, Is.InRange(idleSeconds * 1000 - 50, idleSeconds * 1000 + 5000));
            Assert.That(asking.Closed().Single().Said, Does.StartWith("OK {"), "answered while kept");
        }

        // Asking without ever reading the answers (the helper's writes block): closed all the same
        // when the time is up.
        using (var deaf = new Flood(_attacker, helper.Socket, ungranted, "deaf", _dir))
        {
            Assert.That(DhcpLan.Eventually(() => deaf.Closed().Count == ungranted, TimeSpan.FromSeconds(idleSeconds + 10)), Is.True, helper.Log);
            Assert.That(deaf.Closed().Select(c => c.Ms), Has.All.InRange(idleSeconds * 1000 - 50, idleSeconds * 1000 + 5000), "closed when their time was up");
        }

        // Malformed requests as fast as they can be sent: each connection is closed after 16,
        // and the log holds a few lines for them, not one a request.
        int before = helper.Log().Split('\n').Length;
        using var bogus = new Flood(_attacker, helper.Socket, ungranted, "bogus", _dir);
        Assert.That(DhcpLan.Eventually(() => bogus.Closed().Count == ungranted, TimeSpan.FromSeconds(15)), Is.True, helper.Log);
        Assert.That(bogus.Closed().Select(c => c.Said.Split(" | ").Count(l => l.StartsWith("ERR bad-request"))), Has.All.EqualTo(16), "16 refused requests answered on each, then closed");
        Assert.That(DhcpLan.Eventually(() => helper.Log().Contains("16 requests refused on one connection, 15 of them not logged; closed after 16"), TimeSpan.FromSeconds(5)), Is.True, helper.Log);
        var lines = helper.Log().Split('\n').Skip(before - 1).Where(l => l.Contains($"uid {_attacker.Uid}")).ToList();
        Assert.That(lines, Has.Count.InRange(ungranted, ungranted * 4), string.Join("\n", lines));
        Assert.That(helper.Process.HasExited, Is.False);
    }

    /// <summary>The fourth review: the cut-off after 16 refused requests closed a granted
    /// connection that held addresses, and so released them all (an app at its quota asking
    /// again). A connection that holds addresses is never cut off: asked 25 times with a quota
    /// of 5, it gets 5 and 20 refusals, keeps its 5 on the interface and its connection.</summary>
    [Test, CancelAfter(120_000)]
    public void A_connection_refused_again_and_again_keeps_the_addresses_it_holds()
    {
        using var helper = StartNicHelper("--idle-timeout", "5");
        using var greedy = new Flood(_legit, helper.Socket, 1, "greedy", _dir);
        Assert.That(DhcpLan.Eventually(() => greedy.Answers().Count == 25, TimeSpan.FromSeconds(20)), Is.True, helper.Log);
        var answers = greedy.Answers();
        Assert.That(answers.Take(5).Select(a => a.Split(' ')[0]), Has.All.EqualTo("OK"), string.Join("\n", answers));
        Assert.That(answers.Skip(5), Has.All.StartWith("ERR over-quota"), string.Join("\n", answers));
        var held = answers.Take(5).Select(a => a.Split(' ')[1]).ToList();
        // Past the idle timeout too: it holds addresses, so it may wait.
        Thread.Sleep(TimeSpan.FromSeconds(7)); // only time can show that nothing happened
        Assert.That(greedy.Closed(), Is.Empty, "the connection is still open");
        Assert.That(_hosts.AddressesOnA(), Is.SupersetOf(held), "ip addr: its five addresses stayed");
        Assert.That(helper.Log(), Does.Not.Contain("disconnected: released"));
    }

    /// <summary>The third review: a client's connect to a helper whose queue of connections is
    /// full (it stops accepting) blocked until it accepted, and nothing bounded its wait for an
    /// answer. Against a root-owned socket that accepts nothing, its queue filled, the app's
    /// socket fails after about 5 s, saying why, instead of hanging.</summary>
    [Test, CancelAfter(90_000)]
    public void A_client_gives_up_on_a_helper_that_accepts_nothing()
    {
        string path = Path.Combine(_dir, "stuck.sock");
        using var stuck = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        stuck.Bind(new UnixDomainSocketEndPoint(path));
        File.SetUnixFileMode(path, (UnixFileMode)0b110_110_110);
        stuck.Listen(0);
        var queued = new List<Socket>();
        try
        {
            for (int i = 0; i < 64; i++)
            {
                var one = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { Blocking = false };
                try { one.Connect(new UnixDomainSocketEndPoint(path)); queued.Add(one); }
                catch (SocketException ex) when (ex.SocketErrorCode == SocketError.WouldBlock) { one.Dispose(); break; }
            }
            Assert.That(queued, Has.Count.LessThan(64), "its queue is full");
            var waited = Stopwatch.StartNew();
            using var agent = LegitAgent(_hosts.A, path, "nic", ["sockets", "1", "192.0.2.2:7200", "tcp"]);
            var (addresses, error) = HelperTests.Read(agent);
            Assert.That(addresses, Is.Empty);
            Assert.That(error, Does.Contain("accepted no connection for 5 s (its queue is full)"));
            Assert.That(waited.Elapsed, Is.InRange(TimeSpan.FromSeconds(4.5), TimeSpan.FromSeconds(40)), "it waited about 5 s, not for ever");
            agent.StandardInput.Close();
            Assert.That(agent.WaitForExit(20_000), Is.True);
        }
        finally
        {
            foreach (var one in queued) one.Dispose();
            File.Delete(path);
        }
    }

    // utime + stime of a process, in clock ticks (USER_HZ: 100 a second on Linux).
    private static long CpuTicks(int pid)
    {
        string stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(fields[11]) + long.Parse(fields[12]);
    }

    // The CPU time <paramref name="pid"/> uses over a window of a few seconds must stay under a
    // tenth of one core: a loop retrying a failing accept at once uses all of one.
    private static void AssertQuietFor(int pid, TimeSpan window, string what)
    {
        long before = CpuTicks(pid);
        var measured = Stopwatch.StartNew();
        Thread.Sleep(window); // the measurement window itself
        long used = CpuTicks(pid) - before;
        Assert.That(used, Is.LessThan(measured.Elapsed.TotalSeconds * 100 * 0.1), $"CPU ticks over {measured.Elapsed.TotalSeconds:F1} s {what} (a spinning loop uses ~100 a second)");
    }

    private void AssertServed(Helper helper)
    {
        using var agent = LegitAgent(_hosts.A, helper.Socket, "nic", ["sockets", "1", "192.0.2.2:7200", "tcp"]);
        var (addresses, error) = HelperTests.Read(agent);
        Assert.That(error, Is.Null, helper.Log);
        Assert.That(_hosts.AddressesOnA(), Does.Contain(addresses.Single()), "ip addr: served");
        agent.StandardInput.WriteLine("close");
        Assert.That(agent.WaitForExit(20_000), Is.True);
    }

    /// <summary>A helper with few descriptors (RLIMIT_NOFILE lowered with prlimit while it runs).
    /// Near the limit it refuses connections at once, keeping room for itself; with none left at
    /// all, accept fails and is retried with a pause, logged once: in both, little CPU, no crash,
    /// and served again when the flood ends (and, out of descriptors, the limit is raised).</summary>
    [Test, CancelAfter(150_000)]
    public void Out_of_descriptors_the_helper_backs_off_instead_of_spinning_and_serves_again_when_the_flood_ends()
    {
        using var helper = StartNicHelper("--idle-timeout", "600");
        int pid = helper.Process.Id;
        Assert.That(File.ReadAllText($"/proc/{pid}/comm").Trim(), Is.EqualTo("dotnet"), "the helper's own pid (ip netns exec execs it)");
        int OpenFiles() => Directory.GetFileSystemEntries($"/proc/{pid}/fd").Length;
        const int headroom = 32; // Descriptors.Headroom
        TwoHosts.Run("prlimit", [$"--pid={pid}", $"--nofile={OpenFiles() + headroom + 6}:"]);

        // Near the limit: a few connections are taken, the rest refused at once, saying why.
        using (var flood = new Flood(_attacker, helper.Socket, 60, "silent", _dir))
        {
            Assert.That(DhcpLan.Eventually(() => flood.Closed().Count >= 50, TimeSpan.FromSeconds(20)), Is.True, helper.Log);
            Assert.That(flood.Closed().Select(c => c.Said).ToList(), Has.All.StartWith("ERR busy the helper is near its limit of"));
            AssertQuietFor(pid, TimeSpan.FromSeconds(3), "refusing a flood near the limit of open files");
        }
        AssertServed(helper);

        // None left: accept itself fails (EMFILE), again and again while the flood waits. A new
        // descriptor takes the lowest free number, which the limit now forbids.
        var numbers = Directory.GetFileSystemEntries($"/proc/{pid}/fd").Select(f => int.Parse(Path.GetFileName(f))).ToHashSet();
        int lowestFree = Enumerable.Range(0, numbers.Count + 1).First(n => !numbers.Contains(n));
        TwoHosts.Run("prlimit", [$"--pid={pid}", $"--nofile={lowestFree}:"]);
        using (var flood = new Flood(_attacker, helper.Socket, 20, "silent", _dir))
        {
            Assert.That(DhcpLan.Eventually(() => helper.Log().Contains("accept failed: TooManyOpenSockets"), TimeSpan.FromSeconds(20)), Is.True, helper.Log);
            AssertQuietFor(pid, TimeSpan.FromSeconds(3), "of failing accepts");
            Assert.That(helper.Log().Split('\n').Count(l => l.Contains("accept failed")), Is.EqualTo(1), "logged once");
            Assert.That(helper.Process.HasExited, Is.False, helper.Log);
            TwoHosts.Run("prlimit", [$"--pid={pid}", "--nofile=1024:"]);
        }
        Assert.That(DhcpLan.Eventually(() => helper.Log().Contains("accepting again after"), TimeSpan.FromSeconds(15)), Is.True, helper.Log);
        AssertServed(helper);
    }

    /// <summary>The DHCP server takes the user's leases back (it stops answering, they expire):
    /// they leave the host and no longer count, so the same user gets its full quota again while
    /// its first client still runs; and the first client's connection, holding nothing now, is
    /// closed after the idle timeout.</summary>
    [Test, CancelAfter(180_000)]
    public void A_DHCP_lease_that_expires_returns_its_quota()
    {
        using var lan = new DhcpLan(clients: 1);
        var kea = lan.StartKea(valid: 6, renew: 2, rebind: 4);
        string host = lan.Clients[0];
        using var helper = StartHelper(host,
            $$"""{ "name": "lan", "ranges": ["203.0.113.0/24"], "exclude": ["203.0.113.0", "203.0.113.254"], "source": "dhcp", "provisioner": "netlink", "interface": "{{DhcpLan.ClientLink}}" }""", "lan", 2,
            "--idle-timeout", "8");

        using var first = LegitAgent(host, helper.Socket, "lan", ["sockets", "2", "192.0.2.254:9", "udp"]);
        var (leased, error) = HelperTests.Read(first);
        Assert.That(error, Is.Null, helper.Log);
        Assert.That(leased, Has.Count.EqualTo(2).And.All.StartWith("203.0.113."));
        Assert.That(lan.AddressesOf(host), Is.SupersetOf(leased));

        kea.Kill(true);
        Assert.That(kea.WaitForExit(10_000), Is.True);
        // Renewal and rebinding get no answer: each lease is lost at most 6 s after its last renewal.
        Assert.That(DhcpLan.Eventually(() => leased.All(a => helper.Log().Contains($"lost {a} from pool lan")), TimeSpan.FromSeconds(30)), Is.True, helper.Log);
        Assert.That(DhcpLan.Eventually(() => !lan.AddressesOf(host).Intersect(leased).Any(), TimeSpan.FromSeconds(10)), Is.True, "the lost leases left eth0");
        Assert.That(first.HasExited, Is.False, "the first client is still running");
        // The sixth review: its connection, holding nothing now, no longer waits for ever.
        Assert.That(DhcpLan.Eventually(() => helper.Log().Contains("held no address for 8 s; connection closed"), TimeSpan.FromSeconds(30)), Is.True, helper.Log);

        lan.StartKea(valid: 60, renew: 30, rebind: 50);
        using var second = LegitAgent(host, helper.Socket, "lan", ["sockets", "2", "192.0.2.254:9", "udp"]);
        var (again, refused) = HelperTests.Read(second);
        Assert.That(refused, Is.Null, () => "the quota of 2 is free again: " + helper.Log());
        Assert.That(again, Has.Count.EqualTo(2));
        Assert.That(lan.AddressesOf(host), Is.SupersetOf(again));
        second.StandardInput.WriteLine("close");
        Assert.That(second.WaitForExit(20_000), Is.True);
    }
}
