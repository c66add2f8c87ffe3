using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Logging;
using SockShim.Stack.Telemetry;
using SockShim.Stack.Wire;

namespace SockShim.Stack.Dhcp;

/// <summary>
/// Runs every lease machine of one interface on one thread: it feeds them what arrives on port
/// 68, calls them at their deadlines, sends what they return, and paces DHCPRELEASEs (an
/// unpaced burst of releases is partly dropped by dnsmasq). Every packet of an acquisition
/// (DISCOVER, the REQUEST answering an OFFER, retransmissions) goes out at the pace of <see cref="Pace"/> (a snooping switch shuts a port that
/// sends DHCP faster): what finds no token waits, a socket's own acquisition before the prefetch
/// refill, which also waits out the pace's hold after repeated lost leases. Other threads talk to
/// it only through <see cref="Post"/>; the machines and their sockets are touched by this thread
/// alone.
/// </summary>
internal sealed class DhcpClient : IDisposable
{
    /// <summary>One lease's machine, its renewal socket and who wants to hear about it.</summary>
    public sealed class Entry(DhcpLeaseMachine machine, Action<Entry, DhcpOutput> onEvent)
    {
        public DhcpLeaseMachine Machine { get; } = machine;
        internal Action<Entry, DhcpOutput> OnEvent { get; } = onEvent;
        internal int LeaseSocket = -1;
        internal uint TrackedXid;
        internal bool Tracked;
        /// <summary>Whatever the owner keeps with the lease.</summary>
        public object? Tag { get; set; }
    }

    private static readonly IPAddress Broadcast = IPAddress.Broadcast;

    private readonly DhcpTransport _transport;
    private readonly TimeProvider _time;
    private readonly TimeSpan _releaseGap;
    private readonly bool _freeBind;
    private readonly ILogger _log = StackLogging.For("SockShim.Dhcp");
    private readonly KeyValuePair<string, object?>[] _tags;
    private readonly ConcurrentQueue<Action> _posted = new();
    // When the client thread turns next by itself (Environment.TickCount64), or long.MinValue
    // while it is awake: it runs what was posted before it sleeps again (see PostBy).
    private long _turnsBy = long.MinValue;
    private readonly List<Entry> _entries = new();
    private readonly List<Entry> _due = new();
    private readonly Dictionary<uint, Entry> _byXid = new();
    // Machines a socket's own thread started, by xid, until this thread adopts them.
    private readonly ConcurrentDictionary<uint, Entry> _arriving = new();
    private readonly Queue<(byte[] Payload, int Length, IPAddress Server)> _releases = new();
    private readonly byte[] _sendBuffer = new byte[DhcpMessage.MaxEmitLength];
    private readonly byte[] _receiveBuffer = new byte[2048];
    private readonly Thread _thread;
    private DateTimeOffset _lastRelease = DateTimeOffset.MinValue;
    private readonly ConflictProbe? _probe;
    private readonly TimeSpan _probeWait;
    private int _unsentReleases;
    private volatile bool _stopping;
    private readonly TransactionIds _xids = new();
    // Machines waiting for a token to start (client thread only): a waiting socket's first.
    private readonly Queue<Entry> _socketStarts = new(), _refillStarts = new();
    // REQUESTs answering an OFFER that found no token: sent first when one comes (client thread).
    private readonly Queue<(Entry Entry, DhcpOutput Output, uint Xid)> _requests = new();

    private DhcpClient(string interfaceName, DhcpTransport transport, ConflictProbe? probe, TimeSpan probeWait, bool freeBind, TimeSpan releaseGap, TimeProvider time, string pool, double rate)
    {
        Pace = new DiscoverPace(rate, time);
        Interface = interfaceName;
        _transport = transport;
        _probe = probe;
        _probeWait = probeWait;
        _freeBind = freeBind;
        _releaseGap = releaseGap;
        _time = time;
        _tags = [new("pool", pool), new("interface", interfaceName)];
        _thread = new Thread(Loop) { IsBackground = true, Name = $"sockshim dhcp {interfaceName}" };
        _thread.Start();
    }

    public string Interface { get; }

    /// <summary>The pace of acquisition packets on this interface.</summary>
    public DiscoverPace Pace { get; }

    /// <summary>Messages on port 68 dropped as malformed or not for a lease of this process.</summary>
    public long Discarded => Interlocked.Read(ref _discarded);
    private long _discarded;

    /// <summary>Opens the client's socket on <paramref name="interfaceName"/> (and, with a probe
    /// wait, its ARP socket for conflict detection) and starts its thread; <paramref name="rate"/>:
    /// acquisition packets a second (<see cref="DiscoverPace"/>).</summary>
    public static DhcpClient? Open(string interfaceName, bool freeBind, TimeSpan releaseGap, TimeProvider time, string pool, out string why,
        TimeSpan probeWait = default, byte[]? mac = null, double rate = DiscoverPace.DefaultRate)
    {
        ConflictProbe? probe = null;
        if (probeWait > TimeSpan.Zero && (probe = ConflictProbe.Open(interfaceName, mac!, out why)) is null) return null;
        var transport = DhcpTransport.Open(interfaceName, out why);
        if (transport is null)
        {
            probe?.Dispose();
            return null;
        }
        return new DhcpClient(interfaceName, transport, probe, probeWait, freeBind, releaseGap, time, pool, rate);
    }

    /// <summary>Client thread: checks that no other station uses <paramref name="address"/> before
    /// it is used (RFC 5227 probe, answered within the probe wait); <paramref name="done"/> gets
    /// true on a conflict. Without a probe configured it is told false at once.</summary>
    public void Probe(IPAddress address, Action<bool> done)
    {
        if (_probe is null) done(false);
        else _probe.Start(address, _time.GetUtcNow() + _probeWait, done);
    }

    /// <summary>A fresh random transaction id that no other machine of this process uses now
    /// (see <see cref="TransactionIds"/>).</summary>
    public uint NextXid() => _xids.Next();

    private void Routed(uint xid, bool live) => _xids.Routed(xid, live);

    /// <summary>Runs <paramref name="action"/> on the client's thread.</summary>
    public void Post(Action action)
    {
        _posted.Enqueue(action);
        _transport.Wake();
    }

    /// <summary>Runs <paramref name="action"/> on the client's thread within <paramref
    /// name="within"/>, or when a reply arrives first (a reply runs what was posted before it is
    /// handled): the thread is woken only when it would sleep longer than that. A wake costs the
    /// poster 20 us here and the thread a turn while the socket's DISCOVER is on the wire; the
    /// machine a socket started does not need the thread before its first reply or timer.</summary>
    private void PostBy(Action action, TimeSpan within)
    {
        _posted.Enqueue(action);
        // Against the thread's publish-then-look in Turn (both fenced): either it sees this
        // post before it sleeps, or this sees when it will wake.
        Interlocked.MemoryBarrier();
        long turnsBy = Volatile.Read(ref _turnsBy);
        if (turnsBy != long.MinValue && turnsBy <= Environment.TickCount64 + (long)Math.Max(0, within.TotalMilliseconds)) return;
        _transport.Wake();
    }

    /// <summary>Client thread: starts a machine for the prefetch and reports its events to
    /// <paramref name="onEvent"/>: at once if the pace allows, else in turn.</summary>
    public Entry Start(DhcpLeaseMachine machine, Action<Entry, DhcpOutput> onEvent)
    {
        var entry = new Entry(machine, onEvent);
        _refillStarts.Enqueue(entry);
        StartQueued(_time.GetUtcNow(), out _);
        return entry;
    }

    // Client thread: starts queued machines while there are tokens (the refill's only after the
    // pace's hold); when one has to wait, the time to look again.
    private void StartQueued(DateTimeOffset now, out DateTimeOffset retryAt)
    {
        retryAt = DateTimeOffset.MaxValue;
        while (_requests.Count > 0)
        {
            if (!Pace.TryTake(out retryAt)) return;
            var (waiting, output, xid) = _requests.Dequeue();
            // Still waiting to request what it was offered (not given up, restarted or released).
            if (_entries.Contains(waiting) && waiting.Machine.State == DhcpLeaseState.Requesting && waiting.Machine.TransactionId == xid) Apply(waiting, output);
        }
        while (_socketStarts.Count > 0 || (_refillStarts.Count > 0 && now >= Pace.HoldUntil))
        {
            if (!Pace.TryTake(out retryAt)) return;
            var entry = _socketStarts.Count > 0 ? _socketStarts.Dequeue() : _refillStarts.Dequeue();
            _entries.Add(entry);
            Apply(entry, entry.Machine.Start());
        }
        if (_refillStarts.Count > 0) retryAt = Pace.HoldUntil;
    }

    // A due step of a machine that sends a paced message: a DISCOVER (new, restarted or
    // retransmitted) or a retransmitted REQUEST; past the acquisition deadline it only fails.
    private static bool Paced(DhcpLeaseMachine m, DateTimeOffset now) =>
        m.State is DhcpLeaseState.Init or DhcpLeaseState.Selecting or DhcpLeaseState.Requesting && !(m.AcquireDeadline <= now);

    /// <summary>Any thread: starts a machine and sends its DISCOVER from the calling thread, so a
    /// socket waiting for its lease does not also wait for this thread to wake first; the machine
    /// is this thread's from then on (adopted when its first reply arrives, or in time for its
    /// first timer). Without a token the machine is started by this thread in turn, before any refill. <paramref
    /// name="first"/> runs on this thread before the machine is adopted, in the same post.</summary>
    public Entry StartHere(DhcpLeaseMachine machine, Action<Entry, DhcpOutput> onEvent, object? tag, Action first)
    {
        var entry = new Entry(machine, onEvent) { Tag = tag };
        if (!Pace.TryTake(out _))
        {
            Post(() =>
            {
                first();
                _socketStarts.Enqueue(entry);
            });
            return entry;
        }
        var discover = machine.Start();
        _arriving[machine.TransactionId] = entry;
        Routed(machine.TransactionId, true);
        var buffer = new byte[DhcpMessage.MaxEmitLength];
        int length = discover.Send!.Emit(buffer);
        int error = _transport.Send(_transport.BroadcastSocket, buffer.AsSpan(0, length), Broadcast);
        PostBy(() =>
        {
            first();
            Adopt(entry);
        }, machine.NextDeadline - _time.GetUtcNow());
        if (error != 0) _log.LogWarning("dhcp {Interface}: sending {Message} failed (errno {Error}); it will be retransmitted", Interface, discover.Send, error);
        CrashPoints.Reached(CrashPoint.AfterDiscover);
        return entry;
    }

    private void Adopt(Entry entry)
    {
        _arriving.TryRemove(entry.Machine.TransactionId, out _);
        if (entry.Tracked || _entries.Contains(entry)) return;
        _entries.Add(entry);
        Track(entry);
    }

    /// <summary>Client thread: stops a machine, releasing its lease at the server if it holds one.</summary>
    public void Release(Entry entry)
    {
        Interlocked.Increment(ref _unsentReleases);
        ReleaseCounted(entry);
    }

    /// <summary>Any thread: <see cref="Release"/> on the client thread. The release counts as
    /// unsent from this call on, so a <see cref="Flush"/> right after it (process exit) waits
    /// for it instead of finding nothing queued yet.</summary>
    public void PostRelease(Entry entry)
    {
        Interlocked.Increment(ref _unsentReleases);
        Post(() => ReleaseCounted(entry));
    }

    private void ReleaseCounted(Entry entry)
    {
        var output = entry.Machine.Release();
        Forget(entry);
        if (output.Send is { } m) EnqueueCounted(m, entry.Machine.Server!);
        else Interlocked.Decrement(ref _unsentReleases);
    }

    /// <summary>Any thread: a DHCPRELEASE to send in turn, paced.</summary>
    public void QueueRelease(DhcpMessage release, IPAddress server)
    {
        Interlocked.Increment(ref _unsentReleases);
        Post(() => EnqueueCounted(release, server));
    }

    private void EnqueueCounted(DhcpMessage release, IPAddress server)
    {
        var payload = new byte[DhcpMessage.MaxEmitLength];
        int length = release.Emit(payload);
        _releases.Enqueue((payload, length, server));
    }

    /// <summary>Releases posted or queued and not sent yet.</summary>
    public int UnsentReleases => Volatile.Read(ref _unsentReleases);

    /// <summary>Waits until every queued release has been sent; false on timeout.</summary>
    public bool Flush(TimeSpan timeout)
    {
        var until = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (Volatile.Read(ref _unsentReleases) > 0)
        {
            if (Environment.TickCount64 > until || !_thread.IsAlive) return false;
            Thread.Sleep(1);
        }
        return true;
    }

    /// <summary>Client thread: sends what a machine step returned, and tells the owner.</summary>
    public void Apply(Entry entry, DhcpOutput output)
    {
        var m = entry.Machine;
        if (output.Send is { } message)
        {
            int fd = _transport.BroadcastSocket;
            var destination = Broadcast;
            if (m.State is DhcpLeaseState.Renewing or DhcpLeaseState.Rebinding) fd = EnsureLeaseSocket(entry);
            if (output.To == DhcpSendTo.Server) destination = m.Server!;
            int length = message.Emit(_sendBuffer);
            int error = fd < 0 ? -1 : _transport.Send(fd, _sendBuffer.AsSpan(0, length), destination);
            if (error != 0) _log.LogWarning("dhcp {Interface}: sending {Message} to {Destination} failed (errno {Error}); it will be retransmitted", Interface, message, destination, error);
            else if (_log.IsEnabled(LogLevel.Trace)) _log.LogTrace("dhcp {Interface}: sent {Message} to {Destination}", Interface, message, destination);
            if (m.State == DhcpLeaseState.Selecting) CrashPoints.Reached(CrashPoint.AfterDiscover);
            else if (m.State == DhcpLeaseState.Requesting) CrashPoints.Reached(CrashPoint.AfterRequest);
        }
        if (m.State is not (DhcpLeaseState.Renewing or DhcpLeaseState.Rebinding)) CloseLeaseSocket(entry);
        Track(entry);
        switch (output.Event)
        {
            case DhcpLeaseEvent.None: return;
            case DhcpLeaseEvent.Ignored:
                if (_log.IsEnabled(LogLevel.Trace)) _log.LogTrace("dhcp {Interface}: ignored a message: {Why}", Interface, output.Reason);
                return;
            case DhcpLeaseEvent.Renewed:
                StackMetrics.DhcpRenewals.Add(1, _tags);
                Pace.LeaseKept();
                break;
            case DhcpLeaseEvent.Lost:
                StackMetrics.DhcpExpiries.Add(1, _tags);
                Pace.LeaseLost();
                break;
            case DhcpLeaseEvent.Restarted: StackMetrics.DhcpRestarts.Add(1, _tags); break;
        }
        if (output.Event is DhcpLeaseEvent.Lost or DhcpLeaseEvent.Failed) Forget(entry);
        entry.OnEvent(entry, output);
    }

    private void Forget(Entry entry)
    {
        CloseLeaseSocket(entry);
        if (entry.Tracked && _byXid.TryGetValue(entry.TrackedXid, out var e) && e == entry)
        {
            _byXid.Remove(entry.TrackedXid);
            Routed(entry.TrackedXid, false);
        }
        entry.Tracked = false;
        _entries.Remove(entry);
    }

    private void Track(Entry entry)
    {
        uint xid = entry.Machine.TransactionId;
        if (entry.Tracked && entry.TrackedXid == xid) return;
        if (entry.Tracked && _byXid.TryGetValue(entry.TrackedXid, out var e) && e == entry)
        {
            _byXid.Remove(entry.TrackedXid);
            Routed(entry.TrackedXid, false);
        }
        _byXid[xid] = entry;
        Routed(xid, true);
        entry.TrackedXid = xid;
        entry.Tracked = true;
    }

    private int EnsureLeaseSocket(Entry entry)
    {
        if (entry.LeaseSocket >= 0) return entry.LeaseSocket;
        entry.LeaseSocket = _transport.OpenLeaseSocket(entry.Machine.Address!, _freeBind, out string why);
        if (entry.LeaseSocket < 0) _log.LogWarning("dhcp {Interface}: no socket for renewing {Address}: {Why}", Interface, entry.Machine.Address, why);
        return entry.LeaseSocket;
    }

    private static void CloseLeaseSocket(Entry entry)
    {
        if (entry.LeaseSocket < 0) return;
        DhcpTransport.Close(entry.LeaseSocket);
        entry.LeaseSocket = -1;
    }

    private void Loop()
    {
        var fds = new List<int>();
        var readable = new List<int>();
        while (!_stopping)
        {
            try { Turn(fds, readable); }
            catch (Exception ex)
            {
                // A bug in one lease's handling must not stop every other lease from renewing.
                _log.LogError(ex, "dhcp {Interface}: error in the client loop", Interface);
                Thread.Sleep(10);
            }
        }
    }

    private void RunPosted()
    {
        while (_posted.TryDequeue(out var action)) action();
    }

    private void Turn(List<int> fds, List<int> readable)
    {
        RunPosted();

        var now = _time.GetUtcNow();
        // One pass finds what is due and the next deadline; the due ones run after it, since
        // running them changes the list. Held leases stay listed (they renew), so this is per turn.
        var next = now + TimeSpan.FromSeconds(1);
        StartQueued(now, out var startAt);
        if (startAt < next) next = startAt;
        _due.Clear();
        foreach (var entry in _entries)
        {
            var deadline = entry.Machine.NextDeadline;
            if (deadline <= now) _due.Add(entry);
            else if (deadline < next) next = deadline;
        }
        foreach (var entry in _due)
        {
            if (!_entries.Contains(entry)) continue;
            // Without a token the step waits (its deadline stays past, so it is due again).
            if (Paced(entry.Machine, now) && !Pace.TryTake(out var tokenAt))
            {
                if (tokenAt < next) next = tokenAt;
                continue;
            }
            Apply(entry, entry.Machine.Tick());
            if (entry.Machine.NextDeadline < next) next = entry.Machine.NextDeadline;
        }
        if (_releases.Count > 0)
        {
            if (now >= _lastRelease + _releaseGap)
            {
                var (payload, length, server) = _releases.Dequeue();
                int error = _transport.Send(_transport.BroadcastSocket, payload.AsSpan(0, length), server);
                if (error != 0) _log.LogWarning("dhcp {Interface}: sending a DHCPRELEASE to {Server} failed (errno {Error})", Interface, server, error);
                _lastRelease = now;
                Interlocked.Decrement(ref _unsentReleases);
            }
            if (_releases.Count > 0 && _lastRelease + _releaseGap < next) next = _lastRelease + _releaseGap;
        }

        if (_probe is not null) next = _probe.Settle(now, next);

        fds.Clear();
        fds.Add(_transport.BroadcastSocket);
        if (_probe is not null) fds.Add(_probe.Descriptor);
        foreach (var entry in _entries) if (entry.LeaseSocket >= 0) fds.Add(entry.LeaseSocket);
        int timeout = (int)Math.Clamp(Math.Ceiling((next - _time.GetUtcNow()).TotalMilliseconds), 0, 1000);
        Interlocked.Exchange(ref _turnsBy, Environment.TickCount64 + timeout);
        if (!_posted.IsEmpty) timeout = 0;
        _transport.Wait(fds, timeout, readable);
        Volatile.Write(ref _turnsBy, long.MinValue);
        foreach (int fd in readable)
        {
            if (fd == _probe?.Descriptor) _probe.Drain();
            else Drain(fd);
        }
    }

    private void Drain(int fd)
    {
        for (int i = 0; i < 256; i++)
        {
            int n = _transport.Receive(fd, _receiveBuffer, out var source);
            if (n < 0) return;
            // What other threads posted before this reply was sent (a socket's waiter, a machine
            // its thread started) comes first: a fast server can answer within the same turn.
            RunPosted();
            if (!DhcpMessage.TryParse(_receiveBuffer.AsSpan(0, n), out var message, out string error))
            {
                Discard(error);
                continue;
            }
            if (!message.IsReply)
            {
                Discard("not a server reply");
                continue;
            }
            if (!_byXid.TryGetValue(message.TransactionId, out var entry) && _arriving.TryGetValue(message.TransactionId, out var early))
            {
                Adopt(early);
                entry = early;
            }
            if (entry is null)
            {
                Discard("no lease of this process has that transaction id");
                continue;
            }
            if (_log.IsEnabled(LogLevel.Trace)) _log.LogTrace("dhcp {Interface}: received {Message} from {Source}", Interface, message, source);
            var output = entry.Machine.Receive(message, source);
            if (output.Event == DhcpLeaseEvent.Ignored) Discard(output.Reason!);
            // An OFFER taken: its REQUEST is paced like the DISCOVER (see DiscoverPace); without a
            // token it waits its turn, first in line (its retransmission timer runs meanwhile).
            if (output.Send is not null && entry.Machine.State == DhcpLeaseState.Requesting && (_requests.Count > 0 || !Pace.TryTake(out _)))
            {
                _requests.Enqueue((entry, output, entry.Machine.TransactionId));
                Apply(entry, output with { Send = null });
                continue;
            }
            Apply(entry, output);
        }
    }

    private void Discard(string why)
    {
        Interlocked.Increment(ref _discarded);
        StackMetrics.DhcpDiscarded.Add(1, _tags);
        if (_log.IsEnabled(LogLevel.Debug)) _log.LogDebug("dhcp {Interface}: dropped a packet on port 68: {Why}", Interface, why);
    }

    public void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        _transport.Wake();
        _thread.Join(TimeSpan.FromSeconds(2));
        foreach (var entry in _entries) CloseLeaseSocket(entry);
        _transport.Dispose();
        _probe?.Dispose();
    }
}
