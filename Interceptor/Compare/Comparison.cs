using System.Diagnostics;
using System.Text.RegularExpressions;
using SockShim.Interceptor.Launch;
using SockShim.Interceptor.Store;

namespace SockShim.Interceptor.Compare;

/// <summary>What to compare: the command, SockShim's settings for the patched run, where to capture.</summary>
public sealed record ComparisonOptions
{
    public required IReadOnlyList<string> Command { get; init; }
    /// <summary>Settings of the patched run, as `sockshim run` options (flat keys: Pool, Mode, Dscp...).</summary>
    public Dictionary<string, string?> Settings { get; init; } = new();
    public IReadOnlyList<string> Interfaces { get; init; } = ["lo"];
    /// <summary>BPF filter of the capture: keep it to the command's traffic on a shared interface.</summary>
    public string Filter { get; init; } = "tcp or udp";
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(2);
    public WovenStore? Store { get; init; }
}

/// <summary>One run of the command: its exit code, its output with addresses masked, its traffic.</summary>
public sealed record RunReport(int ExitCode, string Output, int Connections, int Datagrams, string[] LocalAddresses, long BytesOut, long BytesIn, int[] Dscp, List<Flow> Flows,
    long MaskedBytesOut, long MaskedBytesIn)
{
    public int DistinctLocalAddresses => LocalAddresses.Length;
}

/// <summary>Both runs side by side, and every way they differ other than their source addresses.</summary>
public sealed record ComparisonReport(string Command, RunReport Unpatched, RunReport Patched, List<string> Differences)
{
    public bool Same => Differences.Count == 0;
}

/// <summary>
/// `sockshim compare` as an API (tests call it directly): runs the command unpatched (SockShim
/// off: SOCKSHIM_DISABLE=1, no launcher), then patched (as `sockshim run` would), capturing each
/// run's traffic with SharpPcap, and compares. Source addresses and ports, and the DSCP marks that
/// follow a pool's class, are what SockShim is for and are not differences; everything else is.
/// </summary>
public static class Comparison
{
    /// <summary>Runs both; <paramref name="log"/> hears a warning about the woven copy (IL-only), if any.</summary>
    public static ComparisonReport Run(ComparisonOptions options, TextWriter? log = null)
    {
        var store = options.Store ?? new WovenStore(WovenStore.DefaultRoot, Weaving.StoreWeaver.Tools);
        LaunchPlan.Prepare(store, progress: null, warn: line => log?.WriteLine(line));

        var plain = new Dictionary<string, string?>();
        foreach (var key in Environment.GetEnvironmentVariables().Keys.OfType<string>().Where(k => k.StartsWith("SOCKSHIM_"))) plain[key] = null;
        plain["SOCKSHIM_DISABLE"] = "1";
        var unpatched = Once(options, options.Command, plain);

        var settings = Launch.LaunchPlan.WithRunDefaults(new Dictionary<string, string?>(options.Settings));
        var plan = LaunchPlan.For(options.Command.ToArray(), settings, store, AppContext.BaseDirectory, verbose: false);
        RunReport patched;
        try { patched = Once(options, plan.Command, plan.Environment); }
        finally { plan.Cleanup(); }
        return new ComparisonReport(string.Join(' ', options.Command), unpatched, patched, Differences(unpatched, patched));
    }

    private static RunReport Once(ComparisonOptions options, IReadOnlyList<string> command, IReadOnlyDictionary<string, string?> environment)
    {
        using var capture = TrafficCapture.Start(options.Interfaces, options.Filter);
        var psi = LaunchPlan.StartInfo(command, environment);
        psi.RedirectStandardOutput = psi.RedirectStandardError = true;
        using var p = Process.Start(psi) ?? throw new CompareException($"cannot start '{command[0]}'");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(options.Timeout))
        {
            p.Kill(entireProcessTree: true);
            throw new CompareException($"'{string.Join(' ', command)}' did not finish within {options.Timeout.TotalSeconds:0} s");
        }
        p.WaitForExit();
        var flows = FlowTable.Build(capture.Stop());
        return new RunReport(p.ExitCode, Mask(stdout.Result), flows.Count(f => f.Protocol == "tcp"), flows.Where(f => f.Protocol == "udp").Sum(f => f.PacketsOut),
            flows.Select(f => HostOf(f.Local)).Distinct().Order().ToArray(), flows.Sum(f => f.BytesOut), flows.Sum(f => f.BytesIn),
            flows.SelectMany(f => f.Dscp).Distinct().Order().ToArray(), flows, flows.Sum(f => f.MaskedBytesOut), flows.Sum(f => f.MaskedBytesIn));
    }

    private static string HostOf(string endpoint) => endpoint[..endpoint.LastIndexOf(':')].Trim('[', ']');

    // Addresses and the ports beside them are what differs by design.
    private static readonly Regex Addresses = new(@"\[?(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7})\]?(?::\d{1,5})?", RegexOptions.Compiled);

    public static string Mask(string output) => Addresses.Replace(output, "<address>");

    public static List<string> Differences(RunReport a, RunReport b)
    {
        var d = new List<string>();
        if (a.ExitCode != b.ExitCode) d.Add($"exit code: {a.ExitCode} unpatched, {b.ExitCode} patched");
        if (a.Output != b.Output)
        {
            var la = a.Output.Split('\n');
            var lb = b.Output.Split('\n');
            int i = 0;
            while (i < Math.Min(la.Length, lb.Length) && la[i] == lb[i]) i++;
            d.Add($"output (addresses masked) differs from line {i + 1}: '{(i < la.Length ? la[i].Trim() : "(end)")}' unpatched, '{(i < lb.Length ? lb[i].Trim() : "(end)")}' patched");
        }
        if (a.Connections != b.Connections) d.Add($"TCP connections: {a.Connections} unpatched, {b.Connections} patched");
        if (a.Datagrams != b.Datagrams) d.Add($"UDP datagrams sent: {a.Datagrams} unpatched, {b.Datagrams} patched");
        // Byte counts with address literals in the data masked: a server that echoes the client's
        // address sends a longer line to 127.100.0.17 than to 127.0.0.1, and that is no difference.
        if (a.MaskedBytesOut != b.MaskedBytesOut) d.Add($"bytes sent (addresses in the data masked): {a.MaskedBytesOut} unpatched, {b.MaskedBytesOut} patched");
        if (a.MaskedBytesIn != b.MaskedBytesIn) d.Add($"bytes received (addresses in the data masked): {a.MaskedBytesIn} unpatched, {b.MaskedBytesIn} patched");
        // Where the command talked to, and how much, flow by flow (local side left out).
        static string Shape(Flow f) => $"{f.Protocol} to {f.Remote}: {f.MaskedBytesOut} out, {f.MaskedBytesIn} in";
        var sa = a.Flows.Select(Shape).Order().ToList();
        var sb = b.Flows.Select(Shape).Order().ToList();
        if (!sa.SequenceEqual(sb))
        {
            var only = sa.Except(sb).Take(3).Select(s => "unpatched only: " + s).Concat(sb.Except(sa).Take(3).Select(s => "patched only: " + s));
            d.Add("flows differ: " + string.Join("; ", only));
        }
        return d;
    }
}
