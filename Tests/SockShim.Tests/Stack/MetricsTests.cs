using System.Diagnostics.Metrics;
using SockShim.Stack.Claims;
using SockShim.Stack.Pools;
using SockShim.Stack.Telemetry;

namespace SockShim.Tests.Stack;

/// <summary>Each instrument moves as leases are taken, refused and given back.</summary>
[NonParallelizable]
public class MetricsTests
{
    [Test]
    public void Acquisitions_releases_failures_live_leases_and_latency_are_measured_per_pool()
    {
        var seen = new List<(string Instrument, double Value, Dictionary<string, object?> Tags)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) => { if (instrument.Meter.Name == StackMetrics.MeterName) l.EnableMeasurementEvents(instrument); };
        void Record(Instrument i, double v, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var t = new Dictionary<string, object?>();
            foreach (var kv in tags) t[kv.Key] = kv.Value;
            if (Equals(t.GetValueOrDefault("pool"), "metrics")) lock (seen) seen.Add((i.Name, v, t));
        }
        listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Record(i, v, tags));
        listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Record(i, v, tags));
        listener.Start();

        using var t = new TestStack("127.101.60.0/31", name: "metrics");
        var leases = new List<Lease>();
        for (int i = 0; i < 2; i++) { t.Pool.TryAcquire("m", out var l, out _); leases.Add(l); }
        Assert.That(t.Pool.TryAcquire("m", out _, out _), Is.False);
        leases[0].Release();

        double Sum(string name) => seen.Where(s => s.Instrument == name).Sum(s => s.Value);
        Assert.That(Sum("sockshim.leases.acquired"), Is.EqualTo(2));
        Assert.That(Sum("sockshim.leases.released"), Is.EqualTo(1));
        Assert.That(Sum("sockshim.leases.live"), Is.EqualTo(1), "two taken, one given back");
        var failure = seen.Single(s => s.Instrument == "sockshim.leases.failed");
        Assert.That(failure.Tags["reason"], Is.EqualTo("PoolExhausted"));
        var latencies = seen.Where(s => s.Instrument == "sockshim.lease.acquire.duration").ToList();
        Assert.That(latencies, Has.Count.EqualTo(2));
        Assert.That(latencies.All(l => l.Value > 0 && Equals(l.Tags["provisioner"], "loopback")), Is.True);
    }
}
