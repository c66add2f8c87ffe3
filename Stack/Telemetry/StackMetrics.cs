using System.Diagnostics.Metrics;

namespace SockShim.Stack.Telemetry;

/// <summary>
/// SockShim's instruments, on the meter "SockShim" (read them with
/// <c>dotnet-counters monitor --counters SockShim -p PID</c>). Each measurement carries the pool
/// and provisioner; failures also carry the reason. With no listener they cost next to nothing.
/// </summary>
internal static class StackMetrics
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

    // DHCP pools, tagged with the pool and interface.
    public static readonly Counter<long> DhcpRenewals =
        s_meter.CreateCounter<long>("sockshim.dhcp.renewals", "{lease}", "DHCP leases extended by renewing or rebinding");
    public static readonly Counter<long> DhcpExpiries =
        s_meter.CreateCounter<long>("sockshim.dhcp.expiries", "{lease}", "DHCP leases lost while in use (expiry or a NAK to a renewal); each closes its socket");
    public static readonly Counter<long> DhcpRestarts =
        s_meter.CreateCounter<long>("sockshim.dhcp.restarts", "{acquisition}", "DHCP acquisitions started over after a NAK, a DECLINE or an unanswered REQUEST");
    public static readonly Counter<long> DhcpDiscarded =
        s_meter.CreateCounter<long>("sockshim.dhcp.discarded", "{packet}", "Packets on port 68 dropped as malformed or not for this client");
    public static readonly Counter<long> DhcpDeclined =
        s_meter.CreateCounter<long>("sockshim.dhcp.declined", "{address}",
            "Offered or leased addresses refused, by reason: host-address, router, server, network-address, broadcast-address, outside-pool, in-use, arp-conflict");

    // Static pools shared by hosts (RFC 5227 probe before use), tagged with the pool.
    public static readonly Counter<long> Conflicts =
        s_meter.CreateCounter<long>("sockshim.conflicts", "{address}", "Pool addresses skipped because another station on the link answered or probed for them");
}
