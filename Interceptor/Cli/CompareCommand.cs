using System.CommandLine;
using System.Text.Json;
using SockShim.Interceptor.Compare;
using SockShim.Interceptor.Weaving;

namespace SockShim.Interceptor.Cli;

/// <summary><c>sockshim compare [options] -- command</c>: the command unpatched and patched, side by side.</summary>
internal static class CompareCommand
{
    public static Command Create(StackOptions stack, TextWriter output, TextWriter error)
    {
        var cache = CacheOption.Create();
        var json = new Option<bool>("--json") { Description = "print the comparison as JSON instead of tables" };
        var interfaces = new Option<string>("--capture-on") { Description = "interfaces to capture on, comma-separated (default lo)", DefaultValueFactory = _ => "lo" };
        var filter = new Option<string>("--filter") { Description = "BPF filter for the capture, to keep it to the command's traffic (default: tcp or udp)", DefaultValueFactory = _ => "tcp or udp" };
        var timeout = new Option<int>("--timeout") { Description = "seconds each run may take (default 120)", DefaultValueFactory = _ => 120 };
        var command = new Argument<string[]>("command") { Description = "the command to run, after --", Arity = ArgumentArity.OneOrMore };
        var compare = new Command("compare", "Run a command unpatched and under SockShim, capture both runs' traffic, and report side by side; " +
            "exit 1 when they differ in anything but source addresses") { cache, json, interfaces, filter, timeout, command };
        stack.AddTo(compare, forRun: true);
        compare.SetAction(parse =>
        {
            var options = new ComparisonOptions
            {
                Command = parse.GetValue(command)!,
                Settings = stack.Given(parse),
                Interfaces = parse.GetValue(interfaces)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
                Filter = parse.GetValue(filter)!,
                Timeout = TimeSpan.FromSeconds(parse.GetValue(timeout)),
                Store = CacheOption.Store(parse, cache, StoreWeaver.Tools),
            };
            Stack.Configuration.SettingsLoader.Load(Launch.LaunchPlan.WithRunDefaults(new(options.Settings)));
            // An app `run` refuses is not compared: its patched run would be the unpatched one
            // (a trimmed app) and the report would say "the same".
            if (Launch.DeploymentCheck.Problem(options.Command) is { } unservable)
            {
                error.WriteLine($"sockshim compare: not starting the app: {unservable} (exit code {Launch.DeploymentCheck.RefusedExitCode})");
                return Launch.DeploymentCheck.RefusedExitCode;
            }
            ComparisonReport report;
            try { report = Comparison.Run(options, log: error); }
            catch (CompareException ex)
            {
                error.WriteLine("sockshim compare: " + ex.Message);
                return 2;
            }
            catch (WeaveException ex)
            {
                error.WriteLine($"sockshim compare: cannot weave this runtime's System.Net.Sockets: {ex.Message}");
                return 3;
            }
            if (parse.GetValue(json)) output.WriteLine(JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase }));
            else Print(report, output);
            return report.Same ? 0 : 1;
        });
        return compare;
    }

    private static void Print(ComparisonReport r, TextWriter o)
    {
        string Row(string what, object a, object b) => $"{what,-26} {a,-34} {b,-34}";
        o.WriteLine($"sockshim compare: {r.Command}");
        o.WriteLine(Row("", "unpatched", "patched"));
        o.WriteLine(Row("exit code", r.Unpatched.ExitCode, r.Patched.ExitCode));
        o.WriteLine(Row("TCP connections", r.Unpatched.Connections, r.Patched.Connections));
        o.WriteLine(Row("UDP datagrams sent", r.Unpatched.Datagrams, r.Patched.Datagrams));
        o.WriteLine(Row("distinct local addresses", r.Unpatched.DistinctLocalAddresses, r.Patched.DistinctLocalAddresses));
        o.WriteLine(Row("bytes sent / received", $"{r.Unpatched.BytesOut} / {r.Unpatched.BytesIn}", $"{r.Patched.BytesOut} / {r.Patched.BytesIn}"));
        o.WriteLine(Row("DSCP marks sent", Marks(r.Unpatched.Dscp), Marks(r.Patched.Dscp)));
        o.WriteLine(Row("output lines (masked)", r.Unpatched.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length, r.Patched.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length));
        foreach (var (name, run) in new[] { ("unpatched", r.Unpatched), ("patched", r.Patched) })
        {
            o.WriteLine();
            o.WriteLine($"{name} flows:");
            o.WriteLine($"  {"proto",-5} {"local",-24} {"remote",-24} {"pkts out/in",12} {"bytes out/in",16} dscp");
            foreach (var f in run.Flows)
                o.WriteLine($"  {f.Protocol,-5} {f.Local,-24} {f.Remote,-24} {$"{f.PacketsOut}/{f.PacketsIn}",12} {$"{f.BytesOut}/{f.BytesIn}",16} {Marks(f.Dscp)}");
        }
        o.WriteLine();
        if (r.Same) o.WriteLine("same behaviour: the runs differ only in their source addresses");
        else foreach (var d in r.Differences) o.WriteLine("DIFFERENT: " + d);
    }

    private static string Marks(int[] dscp) => dscp.Length == 0 ? "-" : string.Join(",", dscp.Select(d => d == 46 ? "46 (EF)" : d.ToString()));
}
