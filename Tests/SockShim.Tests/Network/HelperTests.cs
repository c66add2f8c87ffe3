using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;

namespace SockShim.Tests.Network;

/// <summary>
/// `sockshim serve` as root in namespace A, an unprivileged user made by the test, its programs
/// with no capability at all: they get NIC addresses only through the helper, within their grant
/// and quota; killing one releases what it held; hostile requests are refused and logged.
/// </summary>
[NonParallelizable]
public class HelperTests
{
    private TwoHosts _hosts = null!;
    private string _dir = "";
    private string _user = "";
    private uint _uid, _gid;
    private Process _helper = null!;
    private readonly StringBuilder _helperLog = new();
    private Process _echo = null!;
    private string Socket => Path.Combine(_dir, "helper.sock");

    [OneTimeSetUp]
    public void Start()
    {
        TwoHosts.RequireRoot();
        _hosts = new TwoHosts();
        TwoHosts.Ip($"-n {_hosts.B} route add 198.51.100.0/24 via 192.0.2.1");
        TwoHosts.Ip($"-n {_hosts.B} route add 203.0.113.0/24 via 192.0.2.1");
        _user = "ssh" + Guid.NewGuid().ToString("N")[..8];
        TwoHosts.Run("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _user]);
        _uid = uint.Parse(TwoHosts.Run("id", ["-u", _user]).Trim());
        _gid = uint.Parse(TwoHosts.Run("id", ["-g", _user]).Trim());
        _dir = Directory.CreateTempSubdirectory("sockshim-helper-").FullName;
        File.SetUnixFileMode(_dir, (UnixFileMode)0b111_101_101);
        string config = Path.Combine(_dir, "helper.json");
        File.WriteAllText(config, $$"""
            { "pools": [
                { "name": "nic", "ranges": ["198.51.100.0/24"], "exclude": ["198.51.100.0"], "provisioner": "netlink", "interface": "{{TwoHosts.LinkA}}" },
                { "name": "other", "ranges": ["203.0.113.0/24"], "exclude": ["203.0.113.0"], "provisioner": "netlink", "interface": "{{TwoHosts.LinkA}}" } ],
              "grants": [ { "user": "{{_user}}", "pools": ["nic"], "quota": 5 } ] }
            """);
        _helper = TwoHosts.StartIn(_hosts.A, "SockShim.Interceptor", ["serve", "--config", config, "--socket", Socket, "--state-dir", _hosts.StateDirectory]);
        _helper.ErrorDataReceived += (_, e) => { lock (_helperLog) _helperLog.AppendLine(e.Data); };
        _helper.BeginErrorReadLine();
        Assert.That(_helper.StandardOutput.ReadLine(), Does.StartWith("serving pools nic, other on "), Log);
        _echo = TwoHosts.StartIn(_hosts.B, "EchoServer", ["--listen", "192.0.2.2:7200", "--timeout", "300"]);
        Assert.That(_echo.StandardOutput.ReadLine(), Does.StartWith("listening"));
    }

    private string Log() { lock (_helperLog) return _helperLog.ToString(); }

    [OneTimeTearDown]
    public void Stop()
    {
        _hosts?.Dispose();
        if (_user != "") TwoHosts.Run("userdel", [_user]);
        if (_dir != "") Directory.Delete(_dir, true);
    }

    /// <summary>The agent as the test's user: no capability, no supplementary group.</summary>
    private Process AsUser(string pool, int count) =>
        Unprivileged.Start(_hosts.A, _uid, _gid, "SockShim.TestAgent", ["sockets", count.ToString(), "192.0.2.2:7200", "tcp"], new Dictionary<string, string>
        {
            ["SOCKSHIM_HELPER"] = Socket, ["SOCKSHIM_POOLNAME"] = pool, ["SOCKSHIM_STATEDIR"] = _hosts.StateDirectory, ["DOTNET_CLI_HOME"] = _dir,
        });

    /// <summary>The addresses a `sockets` agent printed before "held", or the error it printed.</summary>
    internal static (List<string> Addresses, string? Error) Read(Process agent)
    {
        var addresses = new List<string>();
        string? line;
        while ((line = Programs.Line(agent)) is not null && line != "held")
        {
            if (line.StartsWith("error")) return (addresses, line);
            var m = Regex.Match(line, @"^socket (\S+):\d+ ");
            if (m.Success) addresses.Add(m.Groups[1].Value);
        }
        return (addresses, line == "held" ? null : "ended: " + agent.StandardError.ReadToEnd());
    }

    [Test, Order(1)]
    public void An_unprivileged_user_gets_nic_addresses_within_its_grant_and_quota_and_a_kill_releases_them()
    {
        using var first = AsUser("nic", 5);
        var (addresses, error) = Read(first);
        Assert.That(error, Is.Null);
        Assert.That(addresses, Has.Count.EqualTo(5).And.Unique.And.All.StartsWith("198.51.100."));
        Assert.That(_hosts.AddressesOnA(), Is.SupersetOf(addresses), "the helper put them on vA");
        string status = File.ReadAllText($"/proc/{first.Id}/status");
        Assert.That(status, Does.Match($@"Uid:\s+{_uid}\s"), "the app runs as the user");
        Assert.That(status, Does.Contain("CapEff:\t0000000000000000"), "with no capability");

        using var beyond = AsUser("nic", 1);
        var (_, quota) = Read(beyond);
        Assert.That(quota, Does.Match(@"^error AddressNotAvailable SockShim: pool 'nic' \(from the helper at .*\): uid \d+ already holds 5 addresses, its quota for pool 'nic' is 5$"));

        using var outside = AsUser("other", 1);
        var (_, denied) = Read(outside);
        Assert.That(denied, Does.Match(@"^error AccessDenied SockShim: pool 'other' \(from the helper at .*\): uid \d+ has no grant for pool 'other'$"));
        Assert.That(DhcpLan.Eventually(() => Log().Contains("quota of 5 reached") && Log().Contains("refused pool other: no grant"), TimeSpan.FromSeconds(5)), Is.True, Log);

        first.Kill(entireProcessTree: true);
        Assert.That(first.WaitForExit(10_000), Is.True);
        Assert.That(DhcpLan.Eventually(() => !_hosts.AddressesOnA().Intersect(addresses).Any(), TimeSpan.FromSeconds(10)), Is.True, "the kill released its addresses");
        Assert.That(DhcpLan.Eventually(() => Log().Contains("disconnected: released its 5 addresses"), TimeSpan.FromSeconds(5)), Is.True, Log);

        HoldAndClose(5, "the quota is free again");
    }

    /// <summary>The user takes <paramref name="count"/> addresses from pool nic, then closes them.</summary>
    private void HoldAndClose(int count, string why)
    {
        using var agent = AsUser("nic", count);
        var (addresses, error) = Read(agent);
        Assert.That(error, Is.Null, why);
        Assert.That(addresses, Has.Count.EqualTo(count));
        agent.StandardInput.WriteLine("close");
        Assert.That(agent.WaitForExit(20_000), Is.True);
    }

    [Test, Order(2)]
    public void Malformed_and_hostile_requests_are_refused_and_logged_and_others_are_still_served()
    {
        string Exchange(Socket s, byte[] request)
        {
            s.Send(request);
            var buffer = new byte[1024];
            int n = s.Receive(buffer);
            return Encoding.ASCII.GetString(buffer, 0, n).TrimEnd('\n');
        }
        using (var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            s.ReceiveTimeout = 5000;
            s.Connect(new UnixDomainSocketEndPoint(Socket));
            Assert.That(Exchange(s, "HELLO there\n"u8.ToArray()), Does.StartWith("ERR bad-request unknown verb 'HELLO'"));
            Assert.That(Exchange(s, "ACQUIRE\n"u8.ToArray()), Does.StartWith("ERR bad-request not 'VERB argument'"));
            Assert.That(Exchange(s, [.. "ACQUIRE n"u8, 0xff, 0, .. "ic\n"u8]), Does.StartWith("ERR bad-request byte 0xff"));
            Assert.That(Exchange(s, "RELEASE 198.51.100.7\n"u8.ToArray()), Does.StartWith("ERR not-held"));
            Assert.That(Exchange(s, "ACQUIRE nic\n"u8.ToArray()), Does.StartWith("ERR not-granted uid 0 has no grant"), "root has no grant either");
            Assert.That(Exchange(s, "ACQUIRE ../../etc/passwd\n"u8.ToArray()), Does.StartWith("ERR unknown-pool"));
            // A line longer than any request, without an end: refused and the connection closed.
            Assert.That(Exchange(s, Enumerable.Repeat((byte)'A', 4000).ToArray()), Does.StartWith("ERR bad-request requests are at most 512 bytes"));
            Assert.That(s.Receive(new byte[16]), Is.Zero, "closed");
        }
        Assert.That(_helper.HasExited, Is.False);
        // The helper's console logger writes from a queue of its own: give the lines a moment.
        Assert.That(DhcpLan.Eventually(() => Log().Contains("refused a malformed request") && Log().Contains("refused a request longer than 512 bytes"), TimeSpan.FromSeconds(5)), Is.True, Log);

        HoldAndClose(2, "the helper keeps serving");
    }
}
