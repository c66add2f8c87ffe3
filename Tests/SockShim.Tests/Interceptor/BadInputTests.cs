using System.Diagnostics;
using SockShim.Tests.Network;

namespace SockShim.Tests.Interceptor;

/// <summary>
/// A user's mistake given to the real `sockshim` command (the built CLI, in a process of its
/// own): exit 2, one line on stderr that names the bad value and says what would be right, and
/// no stack trace. {d} is a directory of the test's own; an unreadable file is read by a user the
/// test makes (root reads any file).
/// </summary>
[NonParallelizable]
public class BadInputTests
{
    private readonly string _dir = "/dev/shm/sockshim-test-badinput-" + Guid.NewGuid().ToString("N")[..8];
    private string _user = "";
    private uint _uid, _gid;
    private static readonly string Long = "/tmp/" + new string('s', 110) + ".sock";

    [OneTimeSetUp]
    public void Files()
    {
        TwoHosts.RequireRoot();
        Directory.CreateDirectory(_dir);
        File.SetUnixFileMode(_dir, (UnixFileMode)0b111_101_101);
        File.WriteAllText(Path.Combine(_dir, "file"), "not a directory\n");
        Directory.CreateDirectory(Path.Combine(_dir, "open"));
        File.SetUnixFileMode(Path.Combine(_dir, "open"), (UnixFileMode)0b111_111_111);
        const string pools = """ "pools": [ { "name": "lo", "ranges": ["127.107.0.0/24"] } ] """;
        File.WriteAllText(Path.Combine(_dir, "ok.json"), $$"""{ {{pools}}, "grants": [ { "user": "root", "pools": ["lo"] } ] }""");
        File.WriteAllText(Path.Combine(_dir, "null-grant.json"), $$"""{ {{pools}}, "grants": [ { "user": "root", "pools": ["lo"] }, null ] }""");
        File.WriteAllText(Path.Combine(_dir, "null-pool.json"), $$"""{ {{pools}}, "grants": [ { "user": "root", "pools": [null] } ] }""");
        File.WriteAllText(Path.Combine(_dir, "secret.json"), $$"""{ {{pools}} }""");
        File.SetUnixFileMode(Path.Combine(_dir, "secret.json"), UnixFileMode.UserRead | UnixFileMode.UserWrite);
        _user = "ssi" + Guid.NewGuid().ToString("N")[..8];
        TwoHosts.Run("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _user]);
        _uid = uint.Parse(TwoHosts.Run("id", ["-u", _user]).Trim());
        _gid = uint.Parse(TwoHosts.Run("id", ["-g", _user]).Trim());
    }

    [OneTimeTearDown]
    public void Remove()
    {
        if (_user != "") TwoHosts.Run("userdel", [_user]);
        if (Directory.Exists(_dir)) Directory.Delete(_dir, true);
    }

    // Arguments, the bad value the line must name, what it must say is right.
    [TestCase("status --state-dir {d}/file", "{d}/file", "not a directory", "choose another with --state-dir")]
    [TestCase("gc --state-dir {d}/file", "{d}/file", "not a directory", "choose another with --state-dir")]
    [TestCase("status --state-dir /dev/shm", "state directory /dev/shm", "a directory every account shares (mode 1777)", "Choose one inside it, such as /dev/shm/sockshim-0")]
    [TestCase("gc --state-dir /tmp/", "state directory /tmp", "a directory every account shares (mode 1777)", "Choose one inside it, such as /tmp/sockshim-0")]
    [TestCase("serve --config {d}/ok.json --socket {d}/helper.sock --state-dir {d}/file", "{d}/file", "not a directory", "choose another with --state-dir")]
    [TestCase("config --config {d}/missing.json", "'{d}/missing.json'", "does not exist", "Example of a good value: /etc/sockshim.json")]
    [TestCase("serve --config {d}/missing.json --socket {d}/helper.sock", "'{d}/missing.json'", "does not exist", "Example of a good value: /etc/sockshim.json")]
    [TestCase("config --config {d}", "'{d}'", "is a directory", "Example of a good value: /etc/sockshim.json")]
    [TestCase("user: config --config {d}/secret.json", "'{d}/secret.json'", "cannot be read", "a file this account ({user}) can read")]
    [TestCase("serve --config {d}/ok.json --socket helper.sock --state-dir {d}/state", "--socket = 'helper.sock'", "needs an absolute path", "Example of a good value: /run/sockshim/helper.sock")]
    [TestCase("serve --config {d}/ok.json --socket {long} --state-dir {d}/state", "--socket = '{long}'", "at most 107 bytes", "Example of a good value: /run/sockshim/helper.sock")]
    [TestCase("serve --config {d}/ok.json --socket {d}/open/helper.sock --state-dir {d}/state", "--socket {d}/open/helper.sock: {d}/open is writable by other accounts", "(mode 777, owner uid 0)", "such as /run/sockshim")]
    [TestCase("config --helper helper.sock --pool-name lo", "--helper = 'helper.sock'", "absolute path", "Example of a good value: /run/sockshim/helper.sock")]
    [TestCase("config --helper {long} --pool-name lo", "--helper = '{long}'", "at most 107 bytes", "Example of a good value: /run/sockshim/helper.sock")]
    [TestCase("serve --config {d}/null-grant.json --socket {d}/helper.sock --state-dir {d}/state", "key 'grants' = 'null'", "grant 2: null", "Example of a good value: {\"user\"")]
    [TestCase("serve --config {d}/null-pool.json --socket {d}/helper.sock --state-dir {d}/state", "\"pools\": [null]", "its pools hold null", "Example of a good value: {\"user\"")]
    [TestCase("serve --config {d}/ok.json --socket {d}/helper.sock --idle-timeout 0", "--idle-timeout = '0'", "must be at least 1", "--help")]
    [TestCase("config --pool 2001:db8:d::/112 --provisioner netlink --interface lo --strategy one-group", "--strategy = 'one-group'", "2001:db8:d::/112 has 1 address sharing the low 24 bits", "Example of a good value: lrr, or an IPv6 prefix")]
    [TestCase("config --pool 198.51.100.0/24 --provisioner netlink --interface lo --strategy one-group", "--strategy = 'one-group'", "IPv4 has no solicited-node groups", "Example of a good value: lrr, or an IPv6 prefix")]
    [CancelAfter(90_000)]
    public void A_bad_value_is_one_line_naming_it_and_what_is_right_with_exit_2(string command, string names, string wrong, string right)
    {
        string Fill(string s) => s.Replace("{d}", _dir).Replace("{long}", Long).Replace("{user}", _user);
        bool asUser = command.StartsWith("user: ");
        var args = Fill(asUser ? command[6..] : command).Split(' ');
        var (exit, output, error) = asUser ? RunAsUser(args) : Programs.Run("SockShim.Interceptor", args);

        Assert.That(exit, Is.EqualTo(2), $"stdout: {output}\nstderr: {error}");
        Assert.That(error, Does.Not.Contain("   at "), "no stack trace");
        var lines = error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(1), error);
        Assert.That(lines[0], Does.StartWith("sockshim: ").And.Contain(Fill(names)).And.Contain(wrong).And.Contain(Fill(right)));
        Assert.That(File.Exists(Path.Combine(_dir, "helper.sock")), Is.False, "serve made no socket");
        Assert.That(Directory.Exists(Path.Combine(_dir, "state")), Is.False, "nor a state directory");
    }

    // The CLI as the test's user: no capability, no supplementary group.
    private (int Exit, string Out, string Err) RunAsUser(string[] args)
    {
        var psi = new ProcessStartInfo("setpriv") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { $"--reuid={_uid}", $"--regid={_gid}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--", "dotnet", Programs.PathOf("SockShim.Interceptor") })
            psi.ArgumentList.Add(a);
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("SOCKSHIM_")).ToList()) psi.Environment.Remove(key);
        psi.Environment["HOME"] = _dir;
        psi.Environment["DOTNET_CLI_HOME"] = _dir;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.That(p.WaitForExit(60_000), Is.True, "the CLI finished");
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr.Result);
    }
}
