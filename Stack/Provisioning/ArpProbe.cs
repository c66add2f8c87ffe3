using System.Net;
using System.Net.NetworkInformation;
using Microsoft.Extensions.Logging;
using SockShim.Stack.Wire;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace SockShim.Stack.Provisioning;

/// <summary>
/// RFC 5227 address conflict detection for a static pool shared by hosts (IPv6 pools use the
/// kernel's duplicate address detection instead: <see cref="NetlinkProvisioner"/>): before an IPv4 address
/// goes on the interface, ARP probes for it (sender 0.0.0.0) and a wait; a station that answers
/// for it, or probes for it at the same time (§2.1.1: both back off), means another host uses it
/// and it is skipped. Two probes, at the start and half way: one lost frame does not hide a
/// conflict. Each probe has its packet socket, so sockets probing at once do not wait for
/// each other; the wait is what `--prefetch` hides.
/// </summary>
internal sealed unsafe class ArpProbe(string interfaceName, TimeSpan wait)
{
    private const ushort EthPArp = 0x0806;
    private readonly ILogger _log = Telemetry.StackLogging.For("SockShim.Pool");
    // An address another station claimed is skipped without a new probe for a while: the pool's
    // strategy would otherwise offer it to every socket, each paying the whole wait again.
    private static readonly TimeSpan Remembered = TimeSpan.FromSeconds(30);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<IPAddress, (long Until, string Why)> _claimed = new();

    public TimeSpan Wait { get; } = wait;

    /// <summary>Null when no other station claims <paramref name="address"/> within the wait;
    /// otherwise why it cannot be used: the station that claims it, or that the probe could not
    /// be made (then the address is not used either: without the probe nothing says it is free).</summary>
    public string? Conflict(IPAddress address, string pool)
    {
        if (Recalled(address) is { } known) return known;
        if (HostFacts.HardwareAddress(interfaceName) is not { } macBytes) return $"interface '{interfaceName}' has no hardware address to probe from";
        var mac = new PhysicalAddress(macBytes);
        using var link = LinkSocket.Open(interfaceName, EthPArp, "an ARP socket for the conflict probe", out string why);
        if (link is null) return why;
        var probe = ArpFrames.Request(mac, IPAddress.Any, address);
        if (link.Send(probe) is var error and not 0) return $"the ARP probe for {address} could not be sent on {interfaceName} (errno {error})";
        long start = Environment.TickCount64, deadline = start + (long)Wait.TotalMilliseconds, second = start + (long)Wait.TotalMilliseconds / 2;
        bool resent = false;
        var buffer = new byte[1514];
        while (true)
        {
            long now = Environment.TickCount64;
            if (now >= deadline) return null;
            if (!resent && now >= second) { link.Send(probe); resent = true; }
            pollfd fd = new() { fd = link.Descriptor, events = POLLIN };
            poll(&fd, 1, (int)Math.Max(1, (resent ? deadline : second) - now));
            for (int i = 0; i < 256; i++)
            {
                int n = link.Receive(buffer);
                if (n == 0) break;
                if (!ArpFrames.TryRead(buffer.AsSpan(0, n), out var sender, out var senderMac, out var target) || senderMac.Equals(mac)) continue;
                bool probing = sender.Equals(IPAddress.Any);
                if (!(probing ? target : sender).Equals(address)) continue;
                Telemetry.StackMetrics.Conflicts.Add(1, new KeyValuePair<string, object?>("pool", pool));
                _log.LogWarning(probing ? "pool {Pool}: {Address} is being probed for by {Mac} on {Interface} too: skipping it"
                    : "pool {Pool}: {Address} is in use by {Mac} on {Interface}: skipping it", pool, address, senderMac, interfaceName);
                return Remember(address, $"{address} is {(probing ? "being probed for" : "in use")} by {senderMac} on {interfaceName}");
            }
        }
    }

    /// <summary>Why <paramref name="address"/> was found claimed by another station in the last
    /// 30 s (by this probe, or by IPv6 duplicate address detection), or null.</summary>
    public string? Recalled(IPAddress address) =>
        _claimed.TryGetValue(address, out var known) && Environment.TickCount64 < known.Until ? known.Why + " (found in the last 30 s)" : null;

    /// <summary>Records that another station claims <paramref name="address"/>; <paramref name="why"/>.</summary>
    public string Remember(IPAddress address, string why)
    {
        _claimed[address] = (Environment.TickCount64 + (long)Remembered.TotalMilliseconds, why);
        return why;
    }
}
