using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Logging;
using SockShim.Stack.Claims;
using SockShim.Stack.Configuration;
using SockShim.Stack.Dhcp;
using SockShim.Stack.Errors;
using SockShim.Stack.Provisioning;
using SockShim.Stack.Provisioning.Netlink;
using SockShim.Stack.Telemetry;

namespace SockShim.Stack.Sources;

/// <summary>
/// Where a DHCP pool's addresses come from: one lease per socket from the server on the pool's
/// interface. A bound lease is claimed in the pool's host-wide table (which is also its journal:
/// server, IAID, expiry) and put on the host by the pool's provisioner before a socket gets it;
/// an address already on the host is declined. With prefetch, K such leases wait ready, so a new
/// socket takes one without a round trip to the server.
/// </summary>
internal sealed class DhcpSource : IAddressSource
{
    /// <summary>A bound, provisioned lease, waiting for a socket or held by one.</summary>
    internal sealed class Held(DhcpClient.Entry entry, int slot, IPAddress address, uint iaid) : SourcedAddress(slot, address)
    {
        public DhcpClient.Entry Entry { get; } = entry;
        public uint Iaid { get; } = iaid;
        /// <summary>The server the journal names (client thread only): rebinding can move the
        /// lease to another one.</summary>
        internal IPAddress JournalledServer = entry.Machine.Server!;
        public override DateTimeOffset? ExpiresAt => Entry.Machine.ExpiresAt;
        public override IPAddress? Server => Entry.Machine.Server;
        // 0 ready, 1 taken by a socket, 2 lost or given back while ready.
        internal int State;
        // Set once, under Gate, by whoever gives the address back (the socket's return or the
        // server's loss), before it leaves the host: the other one, and a renewal after it, leave
        // the slot and the interface alone (a lifetime refresh would add the address again).
        internal readonly Lock Gate = new();
        internal bool GivenBack;
    }

    // A socket thread waiting for its lease: decided once, by the first of the client thread
    // (a lease, or the error) and the socket's own timeout. The wait blocks without spinning:
    // a lease takes a server round trip or two (about a millisecond), and a spinning waiter on a
    // small host takes the core the client thread and a local server need (measured: 2 cores).
    private sealed class Waiter
    {
        private readonly ManualResetEventSlim _signal = new(false, spinCount: 0);
        private int _state; // 0 waiting, 1 decided, 2 given up
        public Held? Lease { get; private set; }
        public StackError? Error { get; private set; }
        public bool Waiting => Volatile.Read(ref _state) == 0;

        public bool TryServe(Held lease) => TryDecide(lease, null);
        public bool TryFail(StackError error) => TryDecide(null, error);

        private bool TryDecide(Held? lease, StackError? error)
        {
            if (Interlocked.CompareExchange(ref _state, 1, 0) != 0) return false;
            (Lease, Error) = (lease, error);
            _signal.Set();
            return true;
        }

        /// <summary>Socket thread: the lease, or null (the error, or none in time: then no later
        /// lease is given to this waiter).</summary>
        public Held? Wait(TimeSpan timeout)
        {
            _signal.Wait(timeout);
            return Interlocked.CompareExchange(ref _state, 2, 0) == 0 ? null : Lease;
        }
    }

    private readonly HostAddresses _host;
    private readonly DhcpClient _client;
    private readonly byte[] _mac;
    private readonly DhcpTiming _timing;
    private readonly TimeProvider _time;
    private readonly int _prefetch;
    private readonly ILogger _log = StackLogging.For("SockShim.Dhcp");
    private readonly ConcurrentQueue<Held> _ready = new();
    private readonly Queue<Waiter> _waiters = new(); // client thread only
    private int _inFlight;                            // client thread only
    // Offers refused per acquisition (count, the last reason), for its error if none is left.
    private readonly ConcurrentDictionary<DhcpLeaseMachine, (int Count, string Last)> _refused = new();
    // Slots claimed and journalled for an offer this process requests, until the lease is
    // established or the acquisition moves on (client thread only).
    private readonly Dictionary<DhcpLeaseMachine, int> _requesting = new();
    private bool _exiting; // client thread only: the requested leases were released for exit
    // What the host looked like when each requested offer was judged (client thread only), and
    // the route socket the judging asks on (opened at the first offer).
    private readonly Dictionary<DhcpLeaseMachine, HostView> _offerViews = new();
    private RouteNetlink? _routes;
    private readonly HostGateways _gateways;
    private int _disposed;

    private DhcpSource(HostAddresses host, DhcpClient client, HostGateways gateways, byte[] mac, DhcpTiming timing, int prefetch, TimeProvider time)
    {
        _gateways = gateways;
        _host = host;
        _client = client;
        _mac = mac;
        _timing = timing;
        _prefetch = prefetch;
        _time = time;
        host.BeforeReclaim = ReleaseOrphan;
    }

    public SourceKind Kind => SourceKind.Dhcp;
    public LeaseTable Table => _host.Table;
    private string Pool => _host.Pool;
    public string Interface => _client.Interface;

    /// <summary>Opens the DHCP client of a pool's interface (port 68, the client's thread); what
    /// cannot be opened is reported as a problem with the pool's interface setting.</summary>
    public static DhcpSource Open(DhcpPoolSpec spec, HostAddresses host, bool freeBind, TimeProvider time)
    {
        string iface = spec.Interface;
        var mac = HostFacts.HardwareAddress(iface);
        if (mac is null || mac.All(b => b == 0))
            throw new ConfigurationException(new SettingProblem(spec.Origins.Of(PoolField.Interface), iface, "has no Ethernet address to put in DHCP requests", "eth0"));
        var client = DhcpClient.Open(iface, freeBind, ReleaseGap, time, spec.Name, out string why, spec.Dhcp.ProbeWait, mac, spec.Dhcp.Rate)
            ?? throw new ConfigurationException(new SettingProblem(spec.Origins.Of(PoolField.Interface), iface, why, "an Ethernet interface on the DHCP server's link"));
        var timing = new DhcpTiming { AcquireTimeout = spec.Dhcp.AcquireTimeout, RequestedLeaseSeconds = spec.Dhcp.RequestedLeaseSeconds };
        return new DhcpSource(host, client, HostGateways.Watch(), mac, timing, spec.Prefetch, time);
    }

    /// <summary>Starts prefetching (the client's thread leases <c>prefetch</c> addresses ahead).</summary>
    public void Start()
    {
        if (_prefetch > 0) _client.Post(Refill);
    }

    /// <summary>Between two DHCPRELEASEs. A release is never answered, so one the server drops
    /// leaves the lease held there until it expires. dnsmasq dropped 284 of an unpaced burst of
    /// 500; at 1 ms apart two hosts closing 350 sockets each under load overflowed its receive
    /// buffer (58 RcvbufErrors: it rewrites its lease file for every release); 3 ms keeps a
    /// host at 333 a second.</summary>
    public static readonly TimeSpan ReleaseGap = TimeSpan.FromMilliseconds(3);

    /// <summary>How long process exit waits for the queued releases: their pacing twice over,
    /// and at least 5 s.</summary>
    internal static TimeSpan FlushTimeout(int queued) => TimeSpan.FromSeconds(5) + ReleaseGap * (2.0 * queued);

    /// <summary>Leases ready for sockets now (prefetched and not yet taken).</summary>
    public int ReadyCount => _ready.Count(h => Volatile.Read(ref h.State) == 0);

    /// <summary>A lease for a new socket: a prefetched one, or one obtained from the server now.</summary>
    public bool TryTake(out SourcedAddress taken, out StackError? error)
    {
        taken = null!;
        while (_ready.TryDequeue(out var held))
        {
            if (Interlocked.CompareExchange(ref held.State, 1, 0) != 0) continue;
            taken = held;
            _client.Post(Refill);
            error = null;
            return true;
        }
        var waiter = new Waiter();
        uint iaid = _host.Table.NextIaid();
        // The waiter is queued on the client thread (in the same post, before) when the machine
        // started for it is adopted.
        var machine = NewMachine(iaid);
        _client.StartHere(machine, OnEvent, iaid, () =>
        {
            _inFlight++;
            // A lease made ready meanwhile (prefetch) serves this socket at once.
            while (_ready.TryDequeue(out var ready))
                if (Interlocked.CompareExchange(ref ready.State, 1, 0) == 0)
                {
                    if (waiter.TryServe(ready)) return;
                    Volatile.Write(ref ready.State, 0);
                    _ready.Enqueue(ready);
                    return;
                }
            _waiters.Enqueue(waiter);
        });
        // Too late for this socket: a lease bound after this goes to the ready queue instead.
        var lease = waiter.Wait(_timing.AcquireTimeout + TimeSpan.FromSeconds(2));
        if (lease is not null)
        {
            taken = lease;
            error = null;
            return true;
        }
        error = waiter.Error ?? new StackError(StackErrorCode.ProvisionFailed,
            $"pool '{Pool}': no DHCP lease on interface {Interface} within {_timing.AcquireTimeout.TotalSeconds:0.#} s; is a DHCP server answering on that link?");
        return false;
    }

    // Client thread: keeps prefetch + waiting sockets covered by ready leases and acquisitions.
    private void Refill()
    {
        if (Volatile.Read(ref _disposed) != 0) return;
        int waiting = _waiters.Count(w => w.Waiting);
        int want = _prefetch + waiting - ReadyCount - _inFlight;
        for (int i = 0; i < want; i++)
        {
            uint iaid = _host.Table.NextIaid();
            _inFlight++;
            _client.Start(NewMachine(iaid), OnEvent).Tag = iaid;
        }
    }

    private DhcpLeaseMachine NewMachine(uint iaid)
    {
        DhcpLeaseMachine? machine = null;
        machine = new(ClientIdentifier.For(iaid, _mac), _mac, _time, _timing, _client.NextXid)
        {
            Vet = (offer, source) => VetOffer(machine!, iaid, offer, source),
        };
        return machine;
    }

    // Client thread: an OFFER in SELECTING. A refused one is ignored, so the acquisition goes on
    // and another server's offer can win; refusing here rather than declining the ACK means a
    // rogue that answers first never gets a REQUEST, and the real server is not asked to mark
    // an address as declined that it never offered (RFC 2131 §4.4.1 leaves the choice of
    // offer to the client; DHCPDECLINE, §3.1, is for an address found in use after the ACK).
    //
    // An accepted offer is journalled before its REQUEST goes out (see HostAddresses.ClaimForRequest).
    // An address another live process of this host holds is still requested, unjournalled, and
    // declined at the ACK as before: refusing it here would have a server that offers the same
    // address again (dnsmasq hashes the client) retry it until the acquisition times out.
    private string? VetOffer(DhcpLeaseMachine machine, uint iaid, Wire.DhcpMessage offer, IPAddress source)
    {
        // SELECTING again: an earlier REQUEST of this acquisition went unanswered, and the server
        // may have bound it all the same.
        Unjournal(machine, release: true);
        var view = HostView.Read(offer.YourAddress, _routes ??= RouteNetlink.Open(out _), _gateways.Current());
        var (reason, why) = OfferCheck.Judge(OfferFacts.Of(offer, source), _host.Addresses, view);
        if (reason == OfferRejection.None)
        {
            _offerViews[machine] = view;
            int slot = _host.Addresses.IndexOf(offer.YourAddress);
            if (slot >= 0 && _host.ClaimForRequest(slot, ServerWord(offer.ServerId!), iaid)) _requesting[machine] = slot;
            return null;
        }
        Refused(reason, $"refusing the offer of {offer.YourAddress} from {source} (server {offer.ServerId}): {why}");
        _refused.AddOrUpdate(machine, (1, $"{offer.YourAddress} from server {offer.ServerId}: {why}"), (_, c) => (c.Count + 1, $"{offer.YourAddress} from server {offer.ServerId}: {why}"));
        return why;
    }

    // Client thread: the journalled slot of an acquisition that did not become this process's
    // lease is freed; with release, its lease is released at the server first (it may have
    // bound it: an unanswered REQUEST, an acquisition given up or cut short by exit). Not after a
    // NAK (nothing is bound) or a DECLINE (a release would undo it).
    private void Unjournal(DhcpLeaseMachine machine, bool release)
    {
        _offerViews.Remove(machine);
        if (!_requesting.Remove(machine, out int slot)) return;
        if (release && ReleaseOrphan(_host.Table, _host.Addresses, slot, _client, _mac, _time) is { } address && _log.IsEnabled(LogLevel.Debug))
            _log.LogDebug("pool {Pool}: releasing {Address}, requested and not used", Pool, address);
        _host.Table.Release(slot, _host.Owner);
    }

    // Counted by reason and logged: a refusal is the sign of a rogue or misconfigured server.
    private void Refused(OfferRejection reason, string message) => Refused(OfferCheck.Tag(reason), message);

    private void Refused(string tag, string message)
    {
        StackMetrics.DhcpDeclined.Add(1, new KeyValuePair<string, object?>("pool", Pool), new KeyValuePair<string, object?>("interface", Interface),
            new KeyValuePair<string, object?>("reason", tag));
        _log.LogWarning("pool {Pool}: {Message} (reason {Reason})", Pool, message, tag);
    }

    private void OnEvent(DhcpClient.Entry entry, DhcpOutput output)
    {
        switch (output.Event)
        {
            case DhcpLeaseEvent.Bound:
                CrashPoints.Reached(CrashPoint.AfterAck);
                // RFC 2131 4.4.1: check the address on the link before using it (when configured).
                var address = entry.Machine.Address!;
                _client.Probe(address, conflict =>
                {
                    if (!conflict) Establish(entry);
                    else if (entry.Machine.State == DhcpLeaseState.Bound)
                    {
                        Refused("arp-conflict", $"declining {address} from {entry.Machine.Server}: it answered an ARP probe from another station");
                        Unjournal(entry.Machine, release: false);
                        _client.Apply(entry, entry.Machine.Decline($"{address} answered an ARP probe from another station"));
                    }
                    else
                    {
                        // Renewing already (a probe wait longer than T1): give it back instead.
                        _inFlight--;
                        Unjournal(entry.Machine, release: false);
                        _client.Release(entry);
                    }
                });
                break;
            case DhcpLeaseEvent.Renewed:
                if (entry.Tag is Held renewed)
                    lock (renewed.Gate)
                        if (!renewed.GivenBack)
                        {
                            var m = renewed.Entry.Machine;
                            long expires = m.ExpiresAt.ToUnixTimeMilliseconds();
                            // Rebinding took another server's ACK (the first one died, or a
                            // failover pair's standby took over): the journal names the server
                            // that holds the lease now, so `sockshim gc` releases it there.
                            if (m.Server!.Equals(renewed.JournalledServer)) _host.Table.SetExpiry(renewed.Slot, _host.Owner, expires);
                            else
                            {
                                _host.Table.SetDhcp(renewed.Slot, _host.Owner, ServerWord(m.Server), renewed.Iaid, expires);
                                renewed.JournalledServer = m.Server;
                            }
                            _host.Provisioner.Refresh(renewed.Address, Remaining(renewed.Entry.Machine) ?? TimeSpan.MaxValue);
                        }
                if (_log.IsEnabled(LogLevel.Debug)) _log.LogDebug("pool {Pool}: renewed {Address} until {Expiry:O}", Pool, entry.Machine.Address, entry.Machine.ExpiresAt);
                break;
            case DhcpLeaseEvent.Restarted:
                Unjournal(entry.Machine, release: false); // a NAK; a DECLINE has unjournalled already
                _log.LogInformation("pool {Pool}: DHCP acquisition starts over: {Why}", Pool, output.Reason);
                break;
            case DhcpLeaseEvent.Failed:
                Unjournal(entry.Machine, release: entry.Machine.RequestUnanswered);
                _inFlight--;
                string refused = _refused.TryRemove(entry.Machine, out var r)
                    ? $"; {r.Count} offer{(r.Count == 1 ? " was" : "s were")} refused, the last: {r.Last}" : "";
                FailWaiter(new StackError(StackErrorCode.ProvisionFailed, $"pool '{Pool}': no DHCP lease on interface {Interface}: {output.Reason}{refused}"));
                break;
            case DhcpLeaseEvent.Lost:
                if (entry.Tag is Held lost) Lose(lost, output.Reason!);
                else Unjournal(entry.Machine, release: false); // lost while its address was probed
                break;
        }
    }

    // Client thread: a lease is bound; make it the host's, or decline it.
    private void Establish(DhcpClient.Entry entry)
    {
        var m = entry.Machine;
        var address = m.Address!;
        _refused.TryRemove(m, out _);
        if (_exiting)
        {
            _inFlight--;
            _client.Release(entry);
            return;
        }
        // The slot journalled when the offer was requested: the ACK is for the offered address.
        bool journalled = _requesting.Remove(m, out int requested);
        // The offer was judged; the ACK is judged again, its mask and routers may differ, against
        // the host as it was a round trip ago: reading it again cost 0.1-0.2 ms a lease, and the
        // host gaining the address meanwhile is caught by the provisioner, which never adds an
        // address already local (AddressInUse: declined below). Declined, so the server marks it
        // and the acquisition starts over.
        var view = _offerViews.Remove(m, out var offered) ? offered : HostView.Read(address, _routes ??= RouteNetlink.Open(out _), _gateways.Current());
        var (reason, why) = OfferCheck.Judge(OfferFacts.Of(m.Ack!, null), _host.Addresses, view);
        if (reason is not (OfferRejection.None or OfferRejection.OutsidePool))
        {
            if (journalled) _host.Table.Release(requested, _host.Owner);
            Refused(reason, $"declining {address} from {m.Server}: {why}");
            _client.Apply(entry, m.Decline(why));
            return;
        }
        int slot = _host.Addresses.IndexOf(address);
        if (journalled && requested != slot)
        {
            _host.Table.Release(requested, _host.Owner);
            journalled = false;
        }
        if (slot < 0)
        {
            _inFlight--;
            _client.Release(entry);
            FailWaiter(new StackError(StackErrorCode.ProvisionFailed,
                $"pool '{Pool}': DHCP server {m.Server} on {Interface} leased {address}, which is outside the pool's ranges ({string.Join(", ", _host.Addresses.Ranges)}); set the pool's ranges to the server's subnet"));
            return;
        }
        var error = journalled ? _host.Provision(slot, address, Remaining(m)) : _host.ClaimProvisioned(slot, address, Remaining(m));
        if (error is not null)
        {
            if (error.Code == StackErrorCode.AddressInUse)
            {
                Refused("in-use", $"declining {address} from {m.Server}: {error.Message}");
                _client.Apply(entry, m.Decline(error.Message));
                return;
            }
            _inFlight--;
            _client.Release(entry);
            FailWaiter(error);
            return;
        }
        CrashPoints.Reached(CrashPoint.AfterProvision);
        uint iaid = (uint)entry.Tag!;
        _host.Table.SetDhcp(slot, _host.Owner, ServerWord(m.Server!), iaid, m.ExpiresAt.ToUnixTimeMilliseconds());
        var held = new Held(entry, slot, address, iaid);
        entry.Tag = held;
        _inFlight--;
        while (_waiters.TryDequeue(out var w))
        {
            if (Interlocked.CompareExchange(ref held.State, 1, 0) == 0 && w.TryServe(held)) return;
            Volatile.Write(ref held.State, 0);
        }
        _ready.Enqueue(held);
    }

    /// <summary>What is left of a bound lease: the lifetime its address gets on the host, so the
    /// kernel takes it off when the server may lease it to another host, even after a SIGKILL.
    /// Null for an infinite lease (the address stays until given back).</summary>
    private TimeSpan? Remaining(DhcpLeaseMachine m) =>
        m.ExpiresAt == DateTimeOffset.MaxValue ? null : m.ExpiresAt - _time.GetUtcNow();

    private void FailWaiter(StackError error)
    {
        while (_waiters.TryDequeue(out var w))
            if (w.TryFail(error)) return;
        _log.LogWarning("{Error}", error.Message);
    }

    private static uint ServerWord(IPAddress server) => (uint)Addressing.AddressNumber.Of(server).Low;

    // Client thread: the server took the lease back (expiry, NAK). A socket holding it loses it;
    // a ready one is dropped.
    private void Lose(Held held, string reason)
    {
        _log.LogWarning("pool {Pool}: lost {Address}: {Why}", Pool, held.Address, reason);
        int state = Interlocked.CompareExchange(ref held.State, 2, 0);
        if (state == 2) return; // given back while ready: nothing of it is left here
        if (!GiveBack(held)) return; // its socket gave it back meanwhile
        if (state == 0)
        {
            Refill();
            return;
        }
        held.Lose(reason);
    }

    /// <summary>Any thread: a socket is done with its lease: off the host and out of the table,
    /// then the server is told, paced.</summary>
    public void Return(SourcedAddress taken)
    {
        var held = (Held)taken;
        if (GiveBack(held)) _client.PostRelease(held.Entry);
    }

    // Off the host and out of the table, once: a socket's return and the server's loss may race.
    private bool GiveBack(Held held)
    {
        lock (held.Gate)
        {
            if (held.GivenBack) return false;
            held.GivenBack = true;
        }
        _host.GiveBack(held.Slot, held.Address);
        return true;
    }

    /// <summary>Journal: the lease a dead process held in <paramref name="slot"/> is released at
    /// its server, unless it has expired already.</summary>
    public void ReleaseOrphan(int slot)
    {
        if (ReleaseOrphan(_host.Table, _host.Addresses, slot, _client, _mac, _time) is { } address)
            _log.LogInformation("pool {Pool}: releasing {Address}, left by a process that is gone", Pool, address);
    }

    /// <summary>Queues the DHCPRELEASE of a dead holder's journalled lease; the address, or null
    /// when the slot has no unexpired DHCP lease.</summary>
    public static IPAddress? ReleaseOrphan(LeaseTable table, PoolDefinition definition, int slot, DhcpClient client, byte[] mac, TimeProvider time)
    {
        if (table.DhcpOf(slot) is not { } record) return null;
        if (record.ExpiresUnixMs <= time.GetUtcNow().ToUnixTimeMilliseconds()) return null;
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, record.Server);
        var server = new IPAddress(b);
        var address = definition.AddressAt(slot);
        client.QueueRelease(DhcpLeaseMachine.ReleaseMessage(client.NextXid(), address, server, ClientIdentifier.For(record.Iaid, mac), mac), server);
        return address;
    }

    /// <summary>Gives back the prefetched leases no socket took and those requested for sockets
    /// still waiting (exit), and waits until every release is sent.</summary>
    public void ReleaseReady()
    {
        ReleaseRequested();
        while (_ready.TryDequeue(out var held))
        {
            if (Interlocked.CompareExchange(ref held.State, 2, 0) != 0) continue;
            Return(held);
        }
        _client.Flush(FlushTimeout(_client.UnsentReleases));
    }

    public int ReclaimDead() => _host.ReclaimDead();

    // Exit with acquisitions under way: each one requested may be bound at the server by now. An
    // ACK that arrives after this is released at once (Establish).
    private void ReleaseRequested()
    {
        var done = new TaskCompletionSource();
        _client.Post(() =>
        {
            _exiting = true;
            foreach (var machine in _requesting.Keys.ToList()) Unjournal(machine, release: true);
            done.SetResult();
        });
        done.Task.Wait(TimeSpan.FromSeconds(2));
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        ReleaseReady();
        _client.Dispose();
        _routes?.Dispose();
        _gateways.Dispose();
        Table.Dispose();
    }
}
