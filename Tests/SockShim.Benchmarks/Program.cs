using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using SockShim.Benchmarks;

// BenchmarkDotNet figures of the Stack, each printed after BenchmarkDotNet's own tables with its
// target. `dotnet run -c Release --project Tests/SockShim.Benchmarks` (bench/all.sh runs it);
// `-- --full` for BenchmarkDotNet's default (longer, tighter) job instead of the short run.
bool full = args.Contains("--full");
var job = full ? Job.Default : Job.ShortRun;
var config = DefaultConfig.Instance.AddJob(job.WithId(full ? "default" : "short")).WithOptions(ConfigOptions.DisableOptimizationsValidator);
var summaries = BenchmarkRunner.Run([typeof(AllocatorBenchmarks), typeof(PoolBenchmarks), typeof(DhcpWireBenchmarks)], config);

Console.WriteLine();
Console.WriteLine($"{"figure",-48} {"measured",14} {"target",16}  verdict");
foreach (var report in summaries.SelectMany(s => s.Reports))
{
    if (report.ResultStatistics is not { } stats) continue;
    var c = report.BenchmarkCase;
    string name = c.Descriptor.WorkloadMethodDisplayInfo.Trim('\'') + (c.HasParameters ? $" ({string.Join(", ", c.Parameters.Items.Select(p => $"{p.Value}"))})" : "");
    double ns = stats.Mean;
    (string Target, bool Met)? target = c.Descriptor.Type.Name switch
    {
        // >= 5 M claims+releases per second on one thread = <= 200 ns each.
        nameof(AllocatorBenchmarks) => ($">= 5.0 M/s", 1e9 / ns >= 5e6),
        nameof(PoolBenchmarks) => ("<= 1 us", ns <= 1000),
        _ => null,
    };
    string measured = c.Descriptor.Type.Name == nameof(AllocatorBenchmarks) ? $"{1e3 / ns:F1} M/s ({ns:F0} ns)" : $"{ns:F0} ns";
    Console.WriteLine($"{name,-48} {measured,14} {target?.Target ?? "-",16}  {(target is null ? "" : target.Value.Met ? "MET" : "MISSED")}");
}
return 0;
