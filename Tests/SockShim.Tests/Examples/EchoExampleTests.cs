using System.Diagnostics;
using System.Net;
using System.Text.RegularExpressions;

namespace SockShim.Tests.Examples;

/// <summary>The examples as a user runs them: server and client are separate processes, and the
/// server reports the source address the kernel delivered.</summary>
public class EchoExampleTests
{
    [TestCase(false, 40)]
    [TestCase(true, 25)]
    public void Each_client_socket_arrives_from_its_own_pool_address_and_knows_it(bool udp, int n)
    {
        using var t = new TestStack("127.101.50.0/24", name: "examples");
        string ready = Path.Combine(t.StateDirectory, "ready");
        using var server = Programs.Start("EchoServer", ["--listen", "127.0.0.1:0", "--expect", n.ToString(), "--timeout", "30", "--ready-file", ready]);
        var serverOut = server.StandardOutput.ReadToEndAsync();
        var sw = Stopwatch.StartNew();
        while (!File.Exists(ready) && sw.Elapsed < TimeSpan.FromSeconds(15)) Thread.Sleep(50);
        Assert.That(File.Exists(ready), Is.True, "the server started");

        var args = new List<string> { "--server", File.ReadAllText(ready), "--count", n.ToString() };
        if (udp) args.Add("--udp");
        var (exit, stdout, stderr) = Programs.Run("TupleClient", args, t.Environment);
        Assert.That(exit, Is.Zero, stdout + stderr);
        Assert.That(stdout, Does.Contain($"{n} sockets, 0 mismatches"), "every socket's LocalEndPoint equals what the server saw");

        Assert.That(server.WaitForExit(TimeSpan.FromSeconds(30)), Is.True);
        var peers = Regex.Matches(serverOut.Result, @"peer (\S+) said").Select(m => IPEndPoint.Parse(m.Groups[1].Value)).ToList();
        Assert.That(peers, Has.Count.EqualTo(n));
        Assert.That(peers.Select(p => p.Address).Distinct().Count(), Is.EqualTo(n));
        Assert.That(peers.All(p => t.Pool.Definition.Contains(p.Address)), Is.True, "all from the configured pool");
        Assert.That(serverOut.Result, Does.Contain($"distinct source addresses: {n} in {n} served"));
        Assert.That(t.HeldSlots(), Is.Zero, "the client released every address");
    }

    [Test]
    public void A_bad_pool_in_the_environment_stops_the_client_with_a_clear_error()
    {
        var env = new Dictionary<string, string> { ["SOCKSHIM_POOL"] = "127.100.0.0/33" };
        var (exit, stdout, stderr) = Programs.Run("TupleClient", ["--server", "127.0.0.1:9", "--count", "1"], env);
        Assert.That(exit, Is.EqualTo(2), stdout);
        Assert.That(stderr, Does.Contain("environment variable SOCKSHIM_POOL = '127.100.0.0/33'").And.Contain("prefix length"));
        Assert.That(stderr, Does.Not.Contain("   at "), "no stack trace for a user's mistake");
    }
}
