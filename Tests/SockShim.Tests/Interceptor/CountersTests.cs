using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace SockShim.Tests.Interceptor;

/// <summary>
/// The metrics as README tells users to watch them: dotnet-counters (the .NET diagnostics tool,
/// installed as a dotnet tool) attached to an unmodified app under `sockshim run` sees
/// sockshim.leases.live rise when the app opens connections and fall when it closes them.
/// </summary>
[NonParallelizable]
public class CountersTests
{
    private const string CountersVersion = "10.0.750501";
    private const int Connections = 5;

    [Test]
    [CancelAfter(300_000)]
    public void Dotnet_counters_sees_live_leases_rise_and_fall_in_an_app_under_sockshim_run()
    {
        var work = Directory.CreateTempSubdirectory("sockshim-counters-");
        try
        {
            string tools = Path.Combine(work.FullName, "tools");
            var install = Programs.RunFile("dotnet", ["tool", "install", "--tool-path", tools, "dotnet-counters", "--version", CountersVersion], TimeSpan.FromMinutes(3));
            if (install.Exit != 0) Assert.Fail($"missing precondition: needs the dotnet-counters tool {CountersVersion} from NuGet: {install.Out} {install.Err}");

            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start(100);
            var accepted = new List<Socket>();
            var acceptor = Task.Run(() => { try { while (true) accepted.Add(listener.AcceptSocket()); } catch (SocketException) { } });

            using var app = Programs.Start("SockShim.Interceptor", ["run", "--", "dotnet", Programs.PathOf("SockShim.TestAgent"), "steps", Connections.ToString(), listener.LocalEndpoint.ToString()!], redirectInput: true);
            string pid = Regex.Match(Programs.Line(app) ?? "", @"^pid (\d+)$").Groups[1].Value;
            Assert.That(pid, Is.Not.Empty, () => app.StandardError.ReadToEnd());

            string csv = Path.Combine(work.FullName, "counters.csv");
            var counters = new ProcessStartInfo(Path.Combine(tools, "dotnet-counters")) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
            foreach (var a in new[] { "collect", "-p", pid, "--counters", "SockShim", "--refresh-interval", "1", "--format", "csv", "-o", csv }) counters.ArgumentList.Add(a);
            using var collector = Process.Start(counters)!;
            Assert.That(Programs.Line(collector), Does.StartWith("Starting a counter session"), () => collector.StandardError.ReadToEnd());

            // Open, close, open, close. The collector samples once a second and writes its file
            // only when it stops, so each state is held for three of its samples.
            foreach (var step in new[] { "open", "close", "open", "close" })
            {
                app.StandardInput.WriteLine(step);
                app.StandardInput.Flush();
                Assert.That(Programs.Line(app), Does.StartWith(step == "open" ? "opened 127." : "closed"));
                Thread.Sleep(TimeSpan.FromSeconds(3));
            }
            app.StandardInput.Close();
            Assert.That(app.WaitForExit(30_000), Is.True, "the app exits at the end of its input");
            Assert.That(app.ExitCode, Is.Zero, () => app.StandardError.ReadToEnd());
            // The collector ends with the process it watches, and saves its file.
            Assert.That(collector.WaitForExit(30_000), Is.True, "dotnet-counters stopped with the app");
            listener.Stop();

            var rows = File.ReadAllLines(csv).Select(l => Regex.Match(l, @",SockShim,(sockshim\.[a-z.]+) .*?,(?:Metric|Rate),([0-9.]+)$")).Where(m => m.Success)
                .Select(m => (Counter: m.Groups[1].Value, Value: double.Parse(m.Groups[2].Value))).ToList();
            var live = rows.Where(r => r.Counter == "sockshim.leases.live").Select(r => r.Value).ToList();
            TestContext.Out.WriteLine($"sockshim.leases.live as sampled: {string.Join(" ", live)}");
            // Consecutive samples of one state count once; the gauge appears with the first lease.
            var steps = live.Where((v, i) => i == 0 || v != live[i - 1]).SkipWhile(v => v == 0).ToList();
            Assert.That(steps, Is.EqualTo(new double[] { Connections, 0, Connections, 0 }), $"rose to {Connections} at each open and fell to 0 at each close:\n{File.ReadAllText(csv)}");
            Assert.That(rows.Where(r => r.Counter == "sockshim.leases.acquired").Sum(r => r.Value), Is.EqualTo(2 * Connections), "acquisitions per second, summed");
            Assert.That(rows.Where(r => r.Counter == "sockshim.leases.released").Sum(r => r.Value), Is.EqualTo(2 * Connections), "releases per second, summed");
            acceptor.Wait(10_000);
            Assert.That(accepted.Select(s => ((IPEndPoint)s.RemoteEndPoint!).Address.ToString()).ToList(), Has.Count.EqualTo(2 * Connections).And.None.EqualTo("127.0.0.1"),
                "the server saw each connection from a pool address");
            foreach (var s in accepted) s.Dispose();
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }
}
