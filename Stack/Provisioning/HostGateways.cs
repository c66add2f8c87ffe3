using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using SockShim.Stack.Interop;
using SockShim.Stack.Provisioning.Netlink;
using SockShim.Stack.Wire;
using Tmds.Linux;

namespace SockShim.Stack.Provisioning;

/// <summary>
/// The IPv4 gateways of the host's routes, which a DHCP offer must not hand out (the router a
/// route sends through would lose its traffic to this host). Reading /proc/net/route for every
/// offer cost 20-50 us of CPU per lease, on the two cores the server and the client thread need
/// during the exchange, so the view is kept and read again only after the kernel announces a
/// change: a socket bound with RTMGRP_IPV4_ROUTE hears every IPv4 route added or removed, and
/// one joined to RTNLGRP_NEXTHOP every nexthop replaced (which changes its routes' gateways). A
/// change made before the drain is queued before it; one made during the read is heard at the
/// next drain. Routes of the local table are passed over: they never have a gateway, and every
/// address a pool adds makes one. A full queue (ENOBUFS) is drained and read again; an
/// unreadable table is not kept. Some removals are never announced (routes flushed with their
/// link or address); they can only leave a gateway too many, refusing offers of it, and MaxAge
/// bounds that. Any thread may ask.
/// </summary>
internal sealed class HostGateways : IDisposable
{
    private readonly RouteNetlink? _changes;
    private readonly object _gate = new();
    private IReadOnlyCollection<IPAddress>? _known;
    private long _readAt;
    private long _reads;
    private static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(10);

    private HostGateways(RouteNetlink? changes) => _changes = changes;

    /// <summary>Subscribes to route changes; when netlink cannot be opened, every
    /// <see cref="Current"/> reads the table as before.</summary>
    public static HostGateways Watch()
    {
        var changes = RouteNetlink.Open(out _, rtnetlink.RTMGRP_IPV4_ROUTE);
        // A kernel without nexthop objects (before 5.3) has no such group, and no such changes.
        changes?.Join(rtnetlink.RTNLGRP_NEXTHOP);
        return new(changes);
    }

    /// <summary>How many times the route table was read (the cache's effect, for tests).</summary>
    public long Reads => Interlocked.Read(ref _reads);

    /// <summary>The gateways as they are now.</summary>
    public IReadOnlyCollection<IPAddress> Current()
    {
        lock (_gate)
        {
            // Drained before the read: a change that lands while it reads is heard next time.
            bool changed = _changes is null || _changes.TakeNotifications(MayChangeGateways);
            if (changed || _known is null || Stopwatch.GetElapsedTime(_readAt) > MaxAge)
            {
                Interlocked.Increment(ref _reads);
                _readAt = Stopwatch.GetTimestamp();
                var read = Read();
                // Unreadable (descriptors run out, say): none known for this offer, as before the
                // view was kept, and read again at the next.
                _known = read;
                return read ?? [];
            }
            return _known;
        }
    }

    // A route of the local table is no change; anything else (a nexthop, what cannot be read as
    // a route message) counts as one.
    private static bool MayChangeGateways(NetlinkHeader header, ReadOnlySpan<byte> payload) =>
        !(header.Type is rtnetlink.RTM_NEWROUTE or rtnetlink.RTM_DELROUTE && RouteMessage.TryParse(payload, out var route) && route.Table == rtnetlink.RT_TABLE_LOCAL);

    /// <summary>The IPv4 gateways of the host's routes, read from /proc/net/route now; null when
    /// it cannot be read.</summary>
    // Three system calls into one buffer, parsed in place: through File.ReadLines (a stream, the
    // flock that emulates FileShare, a string per line and per field) it cost 0.09 ms.
    public static unsafe HashSet<IPAddress>? Read()
    {
        var gateways = new HashSet<IPAddress>();
        int fd;
        fixed (byte* path = "/proc/net/route\0"u8) fd = LibC.open(path, LibC.O_RDONLY | LibC.O_CLOEXEC, 0);
        if (fd < 0) return null;
        var buffer = ArrayPool<byte>.Shared.Rent(16384);
        try
        {
            int length = 0;
            while (true)
            {
                if (length == buffer.Length)
                {
                    var larger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }
                ssize_t got;
                fixed (byte* b = buffer) got = LibC.read(fd, b + length, (size_t)(buffer.Length - length));
                if (got < 0 && LibC.errno == LibC.EINTR) continue;
                if (got < 0) return null; // part of a table is no table
                if (got == 0) break;
                length += (int)got;
            }
            // Iface Destination Gateway Flags ...: tab-separated, the gateway in hex in the
            // host's byte order; the first line names the columns.
            var lines = buffer.AsSpan(0, length);
            int firstEnd = lines.IndexOf((byte)'\n');
            lines = firstEnd < 0 ? default : lines[(firstEnd + 1)..];
            foreach (var range in lines.Split((byte)'\n'))
            {
                var line = lines[range];
                int field = 0;
                foreach (var f in line.Split((byte)'\t'))
                    if (field++ == 2)
                    {
                        if (uint.TryParse(line[f].Trim(" "u8), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out uint g) && g != 0)
                            gateways.Add(new IPAddress(g));
                        break;
                    }
            }
        }
        finally
        {
            LibC.close(fd);
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return gateways;
    }

    public void Dispose() => _changes?.Dispose();
}
