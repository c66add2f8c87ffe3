using System.Diagnostics.Metrics;

namespace SockShim.Stack.Telemetry;

/// <summary>
/// SockShim's instruments, on the meter "SockShim" (read them with
/// <c>dotnet-counters monitor --counters SockShim -p PID</c>). Each measurement carries the pool
/// and provisioner; failures also carry the reason. With no listener they cost next to nothing.
/// </summary>
public static class StackMetrics
{
    public const string MeterName = "SockShim";
    private static readonly Meter s_meter = new(MeterName, "1.0");

    public static readonly UpDownCounter<long> LiveLeases =
        s_meter.CreateUpDownCounter<long>("sockshim.leases.live", "{lease}", "Leases held by this process now");
    public static readonly Counter<long> Acquisitions =
        s_meter.CreateCounter<long>("sockshim.leases.acquired", "{lease}", "Addresses acquired for sockets");
    public static readonly Counter<long> Releases =
        s_meter.CreateCounter<long>("sockshim.leases.released", "{lease}", "Addresses given back");
    public static readonly Counter<long> Failures =
        s_meter.CreateCounter<long>("sockshim.leases.failed", "{failure}", "Acquisitions that failed, by reason");
    public static readonly Histogram<double> AcquireDuration =
        s_meter.CreateHistogram<double>("sockshim.lease.acquire.duration", "us", "Time to acquire and provision an address");
}
