using System.Diagnostics;
using System.Text.RegularExpressions;
using SockShim.Stack.Policy;

namespace SockShim.Tests.Network;

/// <summary>Per-address QoS: a pool's DiffServ class is on the wire of every socket given one of
/// its addresses, as a capture on loopback shows; another pool's sockets stay unmarked.</summary>
[NonParallelizable]
public class QosTests
{
    [TestCase("EF", 46)]
    [TestCase("af41", 34)]
    [TestCase("AF11", 10)]
    [TestCase("CS5", 40)]
    [TestCase("default", 0)]
    [TestCase("63", 63)]
    public void Class_names_are_the_code_points_routers_use(string name, int codePoint)
    {
        Assert.That(Dscp.TryParse(name, out int got), Is.True);
        Assert.That(got, Is.EqualTo(codePoint));
    }

    [TestCase("AF5")]
    [TestCase("AF44")]
    [TestCase("64")]
    [TestCase("voice")]
    public void Other_values_are_refused(string name) => Assert.That(Dscp.TryParse(name, out _), Is.False);

    [Test]
    public void A_bad_class_is_a_configuration_error_naming_the_setting()
    {
        var ex = Assert.Throws<SockShim.Stack.Configuration.ConfigurationException>(() =>
            SockShim.Stack.Configuration.SettingsLoader.Load(environment: new Dictionary<string, string> { ["SOCKSHIM_DSCP"] = "AF5" }));
        Assert.That(ex!.Message, Does.Contain("SOCKSHIM_DSCP = 'AF5': not a DiffServ class. Example of a good value: EF (voice)"));
    }

    [TestCase("EF", 46)]
    [TestCase(null, 0)]
    public void The_pools_class_is_on_the_wire(string? dscp, int expected)
    {
        TwoHosts.RequireRoot();
        using var pool = new TestStack("127.104.0.0/24", name: "qos");
        string ready = Path.Combine(pool.StateDirectory, "ready");
        using var echo = Programs.Start("EchoServer", ["--listen", "127.0.0.1:0", "--expect", "10", "--timeout", "60", "--ready-file", ready]);
        Assert.That(DhcpLan.Eventually(() => File.Exists(ready), TimeSpan.FromSeconds(20)), Is.True);
        string server = File.ReadAllText(ready);
        using var capture = Programs.Start("SockShim.PcapProbe", ["lo", $"udp dst port {server.Split(':')[1]}", "60"], redirectInput: true);
        Assert.That(capture.StandardOutput.ReadLine(), Is.EqualTo("ready"), () => capture.StandardError.ReadToEnd());
        var captured = capture.StandardOutput.ReadToEndAsync();

        var env = new Dictionary<string, string>(pool.Environment);
        if (dscp is not null) env["SOCKSHIM_DSCP"] = dscp;
        var (exit, output, error) = Programs.Run("TupleClient", ["--server", server, "--count", "10", "--udp"], env);
        Assert.That(exit, Is.Zero, output + error);
        Assert.That(echo.WaitForExit(30_000), Is.True);
        capture.StandardInput.Close();
        Assert.That(capture.WaitForExit(30_000), Is.True);

        var datagrams = Regex.Matches(captured.Result, @"^udp (\S+) \S+ dscp (\d+)$", RegexOptions.Multiline).ToList();
        Assert.That(datagrams.Select(m => m.Groups[1].Value).Distinct().Count(), Is.EqualTo(10), "ten sockets, ten source addresses");
        Assert.That(datagrams.Select(m => int.Parse(m.Groups[2].Value)), Has.All.EqualTo(expected));
    }

    /// <summary>Every front end binds through the one binder, so every one marks its sockets: the
    /// pool's class on the TCP SYN, on TCP data segments and on UDP datagrams, from TupleSocket,
    /// from a Berkeley TUPLE_STATIC-style descriptor (a named pool) and from an unmodified app
    /// under `sockshim run`; in the same capture, a second pool without a class stays at 0.</summary>
    [Test]
    public void Every_front_end_marks_tcp_and_udp_with_its_pools_class()
    {
        TwoHosts.RequireRoot();
        string state = "/dev/shm/sockshim-test-qos-" + Guid.NewGuid().ToString("N")[..8];
        Directory.CreateDirectory(state);
        try
        {
            string config = Path.Combine(state, "pools.json");
            File.WriteAllText(config, """
                {"pools":[{"name":"marked","ranges":["127.104.1.0/24"],"dscp":"EF"},
                          {"name":"unmarked","ranges":["127.104.2.0/24"]}]}
                """);
            string ready = Path.Combine(state, "ready");
            using var echo = Programs.Start("EchoServer", ["--listen", "127.0.0.1:0", "--timeout", "120", "--ready-file", ready]);
            Assert.That(DhcpLan.Eventually(() => File.Exists(ready), TimeSpan.FromSeconds(20)), Is.True);
            string server = File.ReadAllText(ready);
            using var capture = Programs.Start("SockShim.PcapProbe", ["lo", $"dst port {server.Split(':')[1]} and src net 127.104.0.0/16", "90"], redirectInput: true);
            Assert.That(Programs.Line(capture), Is.EqualTo("ready"), () => capture.StandardError.ReadToEnd());
            var captured = capture.StandardOutput.ReadToEndAsync();

            var env = new Dictionary<string, string> { ["SOCKSHIM_CONFIG"] = config, ["SOCKSHIM_STATEDIR"] = state };
            var runs = new List<(string FrontEnd, int Expected, string Tcp, string Udp)>();
            void Traffic(string frontEnd, int expected, string[] args)
            {
                var (exit, output, error) = Programs.Run(args[0], args[1..], env, TimeSpan.FromMinutes(2));
                Assert.That(exit, Is.Zero, $"{frontEnd}: {output}{error}");
                string Local(string proto) => Regex.Match(output, $@"^{proto} (\S+)$", RegexOptions.Multiline).Groups[1].Value;
                runs.Add((frontEnd, expected, Local("tcp"), Local("udp")));
            }
            string agent = Programs.PathOf("SockShim.TestAgent");
            foreach (var (pool, expected) in new[] { ("marked", 46), ("unmarked", 0) })
            {
                Traffic($"TupleSocket from {pool}", expected, ["SockShim.TestAgent", "traffic", server, "tuple", pool]);
                Traffic($"Berkeley from {pool}", expected, ["SockShim.TestAgent", "traffic", server, "berkeley", pool]);
            }
            // An unmodified app: ordinary sockets, the launcher's first pool (the marked one).
            Traffic("sockshim run", 46, ["SockShim.Interceptor", "run", "--", "dotnet", agent, "traffic", server, "plain"]);

            capture.StandardInput.Close();
            Assert.That(capture.WaitForExit(60_000), Is.True);
            echo.Kill();
            var packets = Regex.Matches(captured.Result, @"^(syn|tcp|udp) (\S+) \S+ dscp (\d+)$", RegexOptions.Multiline)
                .Select(m => (Kind: m.Groups[1].Value, Source: m.Groups[2].Value, Dscp: int.Parse(m.Groups[3].Value))).ToList();
            Assert.Multiple(() =>
            {
                foreach (var (frontEnd, expected, tcp, udp) in runs)
                {
                    Assert.That(tcp, Does.StartWith("127.104."), $"{frontEnd}: TCP from a pool address");
                    Assert.That(udp, Does.StartWith("127.104."), $"{frontEnd}: UDP from a pool address");
                    foreach (var (kind, source) in new[] { ("syn", tcp), ("tcp", tcp), ("udp", udp) })
                    {
                        var seen = packets.Where(p => p.Kind == kind && p.Source == source).Select(p => p.Dscp).ToList();
                        Assert.That(seen, Is.Not.Empty, $"{frontEnd}: a {kind} packet from {source} was captured");
                        Assert.That(seen, Has.All.EqualTo(expected), $"{frontEnd}: {kind} from {source}");
                    }
                }
            });
        }
        finally
        {
            Directory.Delete(state, true);
        }
    }

    /// <summary>IPv6: the class goes into the traffic class (IPV6_TCLASS). An AnyIP prefix on a
    /// namespace's loopback gives the IPv6 addresses (the loopback provisioner is IPv4-only).</summary>
    [Test]
    public void The_pools_class_is_in_the_ipv6_traffic_class()
    {
        TwoHosts.RequireRoot();
        using var space = new TestNamespace("ssq");
        string ns = space.Name, state = space.StateDirectory;
        {
            TwoHosts.Ip($"-n {ns} -6 route add local 2001:db8:1::/64 dev lo");
            using var echo = TwoHosts.StartIn(ns, "EchoServer", ["--listen", "[::1]:7400", "--expect", "5", "--timeout", "60"]);
            Assert.That(echo.StandardOutput.ReadLine(), Does.StartWith("listening"));
            using var capture = TwoHosts.StartIn(ns, "SockShim.PcapProbe", ["lo", "udp dst port 7400", "60"], redirectInput: true);
            Assert.That(capture.StandardOutput.ReadLine(), Is.EqualTo("ready"), () => capture.StandardError.ReadToEnd());
            var captured = capture.StandardOutput.ReadToEndAsync();
            var env = new Dictionary<string, string>
            {
                ["SOCKSHIM_POOL"] = "2001:db8:1::/112", ["SOCKSHIM_PROVISIONER"] = "anyip", ["SOCKSHIM_DSCP"] = "EF",
                ["SOCKSHIM_STATEDIR"] = state, ["SOCKSHIM_MAXADDRESSES"] = "1024",
            };
            var (exit, output, error) = TwoHosts.RunIn(ns, "TupleClient", ["--server", "[::1]:7400", "--count", "5", "--udp"], env);
            Assert.That(exit, Is.Zero, output + error);
            Assert.That(echo.WaitForExit(30_000), Is.True);
            capture.StandardInput.Close();
            Assert.That(capture.WaitForExit(30_000), Is.True);
            var datagrams = Regex.Matches(captured.Result, @"^udp (\S+) \S+ dscp (\d+)$", RegexOptions.Multiline).ToList();
            Assert.That(datagrams.Select(m => m.Groups[1].Value).Distinct().Count(), Is.EqualTo(5));
            Assert.That(datagrams.Select(m => m.Groups[1].Value), Has.All.StartsWith("2001:db8:1::"));
            Assert.That(datagrams.Select(m => int.Parse(m.Groups[2].Value)), Has.All.EqualTo(46));
        }
    }
}
