using System.Net;
using SockShim.Stack.Wire;

namespace SockShim.Stack.Dhcp;

/// <summary>The client states of RFC 2131 §4.4 (Figure 5) that one socket's lease goes through.</summary>
internal enum DhcpLeaseState { Init, Selecting, Requesting, Bound, Renewing, Rebinding, Released, Lost, Failed }

/// <summary>What a step of the machine means for the lease's holder.</summary>
internal enum DhcpLeaseEvent
{
    None,
    /// <summary>The message was not for this lease, or not valid in this state.</summary>
    Ignored,
    /// <summary>An address is leased (<see cref="DhcpLeaseMachine.Address"/>).</summary>
    Bound,
    /// <summary>The lease was extended by a renewal or a rebinding.</summary>
    Renewed,
    /// <summary>Acquisition starts over (a NAK, a decline, or no ACK to the REQUEST).</summary>
    Restarted,
    /// <summary>A held lease ended: expiry, or a NAK to a renewal.</summary>
    Lost,
    /// <summary>No lease could be obtained in the acquisition time.</summary>
    Failed,
}

/// <summary>Where a message goes: broadcast on the link (ciaddr 0), or unicast to the server
/// from the leased address (renewal, release).</summary>
internal enum DhcpSendTo { Broadcast, Server }

/// <summary>One step: at most one message to send and what happened.</summary>
internal readonly record struct DhcpOutput(DhcpMessage? Send, DhcpSendTo To, DhcpLeaseEvent Event, string? Reason = null)
{
    public static DhcpOutput Nothing => new(null, DhcpSendTo.Broadcast, DhcpLeaseEvent.None);
    public static DhcpOutput Ignore(string why) => new(null, DhcpSendTo.Broadcast, DhcpLeaseEvent.Ignored, why);
}

/// <summary>
/// One lease's DHCPv4 client state machine (RFC 2131 §4.4). It does no I/O and reads the time
/// only from the injected <see cref="TimeProvider"/>: the driver feeds it received messages and
/// calls <see cref="Tick"/> at <see cref="NextDeadline"/>, and sends what it returns. So renewal,
/// rebinding and expiry are tested with a fake clock.
/// </summary>
internal sealed class DhcpLeaseMachine
{
    // 1 and 3 (mask, routers) let the holder judge the address (OfferCheck).
    private static readonly byte[] Parameters = [1, 3, 51, 54, 58, 59];
    private const ushort MaxMessage = 1500;

    private readonly byte[] _clientId;
    private readonly byte[] _mac;
    private readonly TimeProvider _time;
    private readonly DhcpTiming _timing;
    private readonly Random _random;
    private readonly Func<uint> _nextXid;

    private DateTimeOffset _acquireStarted;
    private DateTimeOffset? _acquireDeadline;
    private DateTimeOffset _requestSentAt;
    private int _attempt;
    private int _restarts; // since the last bind: the restart backoff's exponent
    private IPAddress? _offered;

    public DhcpLeaseMachine(byte[] clientId, byte[] mac, TimeProvider time, DhcpTiming timing, Func<uint> nextXid, Random? random = null)
    {
        _clientId = clientId;
        _mac = mac;
        _time = time;
        _timing = timing;
        _nextXid = nextXid;
        _random = random ?? Random.Shared;
    }

    public DhcpLeaseState State { get; private set; } = DhcpLeaseState.Init;
    public uint TransactionId { get; private set; }
    public byte[] ClientId => _clientId;
    public IPAddress? Address { get; private set; }
    public IPAddress? Server { get; private set; }
    public DateTimeOffset LeaseStart { get; private set; }
    /// <summary>The ACK the lease was bound or last extended with (its mask and routers).</summary>
    public DhcpMessage? Ack { get; private set; }
    /// <summary>Judges an OFFER (message, source) in SELECTING: a reason refuses it, so another
    /// server's offer can still win (RFC 2131 §4.4.1: the client may choose among offers).</summary>
    public Func<DhcpMessage, IPAddress, string?>? Vet { get; init; }
    public DateTimeOffset RenewAt { get; private set; } = DateTimeOffset.MaxValue;
    public DateTimeOffset RebindAt { get; private set; } = DateTimeOffset.MaxValue;
    public DateTimeOffset ExpiresAt { get; private set; } = DateTimeOffset.MaxValue;
    /// <summary>When an acquisition under way fails; null when none is.</summary>
    public DateTimeOffset? AcquireDeadline => _acquireDeadline;
    /// <summary>When <see cref="Tick"/> has something to do; MaxValue when nothing is pending.</summary>
    public DateTimeOffset NextDeadline { get; private set; } = DateTimeOffset.MaxValue;

    public bool Holds => State is DhcpLeaseState.Bound or DhcpLeaseState.Renewing or DhcpLeaseState.Rebinding;

    /// <summary>Failed with a REQUEST unanswered: the server may hold a lease for it (which a
    /// release ends). False for a failure the server answered (a lease under the floor ends
    /// by itself, a NAK binds nothing).</summary>
    public bool RequestUnanswered { get; private set; }

    private DateTimeOffset Now => _time.GetUtcNow();

    /// <summary>INIT → SELECTING: the first DISCOVER.</summary>
    public DhcpOutput Start()
    {
        if (State is not DhcpLeaseState.Init) throw new InvalidOperationException($"a lease in state {State} cannot start");
        _acquireStarted = Now;
        _acquireDeadline ??= _acquireStarted + _timing.AcquireTimeout;
        return Discover();
    }

    private DhcpOutput Discover()
    {
        State = DhcpLeaseState.Selecting;
        TransactionId = _nextXid();
        _attempt = 0;
        Address = Server = _offered = null;
        ScheduleRetransmit();
        return new(Acquiring(DhcpMessageType.Discover), DhcpSendTo.Broadcast, DhcpLeaseEvent.None);
    }

    private DhcpOutput Request()
    {
        var m = Acquiring(DhcpMessageType.Request);
        m.RequestedAddress = _offered;
        m.ServerId = Server;
        _requestSentAt = Now;
        ScheduleRetransmit();
        return new(m, DhcpSendTo.Broadcast, DhcpLeaseEvent.None);
    }

    private DhcpMessage Acquiring(DhcpMessageType type) => new()
    {
        MessageType = type,
        TransactionId = TransactionId,
        Flags = DhcpMessage.BroadcastFlag, // no address yet: replies must be broadcast to reach us
        Seconds = (ushort)Math.Min(ushort.MaxValue, (Now - _acquireStarted).TotalSeconds),
        HardwareAddress = _mac,
        ClientId = _clientId,
        ParameterRequests = Parameters,
        MaxMessageSize = MaxMessage,
        LeaseSeconds = _timing.RequestedLeaseSeconds,
    };

    // RFC 2131 §4.1: exponential backoff, randomized so many clients do not retransmit in step.
    private void ScheduleRetransmit()
    {
        double baseMs = Math.Min(_timing.FirstRetransmit.TotalMilliseconds * Math.Pow(2, _attempt), _timing.MaxRetransmit.TotalMilliseconds);
        double jitter = (_random.NextDouble() - 0.5) * baseMs / 2;
        var next = Now + TimeSpan.FromMilliseconds(baseMs + jitter);
        NextDeadline = _acquireDeadline is { } d && d < next ? d : next;
    }

    /// <summary>A received message and the address it came from; anything that cannot be this
    /// lease's reply in the current state is ignored with the reason.</summary>
    /// <remarks>
    /// DHCPv4 has no authentication in practice (RFC 3118 is not deployed), so any host of the
    /// link can forge a reply. What this checks makes a forged reply useless unless it copies
    /// what only the lease's own server and the path to it know:
    /// <list type="bullet">
    /// <item>The xid is fresh and random per transaction (<see cref="TransactionIds"/>): a
    /// renewal goes unicast to the server, so on a switched link no other host sees its xid.</item>
    /// <item>RENEWING talks to the bound server alone (RFC 2131 §4.4.5: the REQUEST is unicast
    /// to it), so a reply must come from that address and name it as server id.</item>
    /// <item>Every ACK and NAK must carry a server id (RFC 2131 Table 3: MUST), and a NAK must name
    /// the server this lease talks to (below); an ACK for another address changes nothing.</item>
    /// <item>Option 61: one carrying another identifier is another lease's (all of this host's
    /// leases share one MAC, so chaddr tells them nothing). RFC 6842 makes servers echo it, but
    /// RFC 2131 had said they MUST NOT, and not every server echoes: Kea 2.2 does, but dnsmasq
    /// 2.90 (both seen in the tests' captures) sends OFFERs and ACKs without it, and broadcasts
    /// its OFFERs from the first address of its interface while naming another as server id, so
    /// neither option 61 nor the source can be required while acquiring (its unicast renewal
    /// ACKs do come from the server id's address). A reply without it is matched by xid (random, and never one another lease of
    /// this process has open) and chaddr, and past SELECTING it must name this lease's server:
    /// while REBINDING another server's ACK is taken only with our option 61. That is safe:
    /// a forger leaving option 61 out gains nothing, since it could copy ours from any
    /// broadcast, and it still has to pass every other check here.</item>
    /// </list>
    /// </remarks>
    public DhcpOutput Receive(DhcpMessage m, IPAddress source)
    {
        if (State is not (DhcpLeaseState.Selecting or DhcpLeaseState.Requesting or DhcpLeaseState.Renewing or DhcpLeaseState.Rebinding))
            return DhcpOutput.Ignore($"no transaction open in state {State}");
        if (!m.IsReply || m.TransactionId != TransactionId) return DhcpOutput.Ignore("another transaction");
        if (!m.HardwareAddress.AsSpan(0, 6).SequenceEqual(_mac)) return DhcpOutput.Ignore("another hardware address");
        if (m.MessageType is not (DhcpMessageType.Offer or DhcpMessageType.Ack or DhcpMessageType.Nak))
            return DhcpOutput.Ignore($"a {m.MessageType?.ToString() ?? "BOOTP"} message in state {State}");
        if (m.ServerId is not { } sid) return DhcpOutput.Ignore($"a {m.MessageType} without a server identifier (RFC 2131 Table 3 requires one) from {source}");
        if (m.ClientId is { } id)
        {
            if (!id.AsSpan().SequenceEqual(_clientId)) return DhcpOutput.Ignore("another client identifier");
        }
        else if (State is not DhcpLeaseState.Selecting && !sid.Equals(Server))
            return DhcpOutput.Ignore($"a {m.MessageType} without our client identifier naming server {sid}, not this lease's server {Server}");
        // RENEWING: the REQUEST went unicast to the bound server; only it answers, from its address.
        if (State is DhcpLeaseState.Renewing && !(sid.Equals(Server) && source.Equals(Server)))
            return DhcpOutput.Ignore($"a {m.MessageType} to a renewal from {source} naming server {sid}, not the bound server {Server}");

        switch (State, m.MessageType)
        {
            case (DhcpLeaseState.Selecting, DhcpMessageType.Offer):
                if (m.YourAddress.Equals(IPAddress.Any)) return DhcpOutput.Ignore("an offer without an address");
                if (Vet?.Invoke(m, source) is { } refused) return DhcpOutput.Ignore($"an offer of {m.YourAddress} from {source} naming server {sid}, refused: {refused}");
                _offered = m.YourAddress;
                Server = sid;
                State = DhcpLeaseState.Requesting;
                _attempt = 0;
                return Request();

            case (DhcpLeaseState.Requesting, DhcpMessageType.Ack):
                if (!sid.Equals(Server)) return DhcpOutput.Ignore($"an ACK from {sid}, a server not selected");
                if (!m.YourAddress.Equals(_offered)) return DhcpOutput.Ignore($"an ACK for {m.YourAddress}, not the requested {_offered}");
                return Bind(m, DhcpLeaseEvent.Bound);

            case (DhcpLeaseState.Requesting, DhcpMessageType.Nak):
                if (!sid.Equals(Server)) return DhcpOutput.Ignore($"a NAK from {sid}, a server not selected");
                return Restart($"server {Server} refused {_offered} (DHCPNAK{Said(m)})");

            // REBINDING asks any server (RFC 2131 §4.4.5), so an ACK from another one is taken, but
            // only for this lease's address: an ACK for another one neither ends nor moves the lease.
            case (DhcpLeaseState.Renewing or DhcpLeaseState.Rebinding, DhcpMessageType.Ack):
                if (!m.YourAddress.Equals(Address)) return DhcpOutput.Ignore($"an ACK to the renewal of {Address} for another address, {m.YourAddress}, from {source} naming server {sid}");
                return Bind(m, DhcpLeaseEvent.Renewed);

            // A NAK ends a held lease, so it must come from the server that holds it. RFC 2131
            // §4.3.2 lets any server answer a REBINDING REQUEST and says it SHOULD check ciaddr, so
            // another server could NAK an address that is wrong for the network; but every xid of
            // REBINDING is broadcast, and taking a NAK from any server id would let any host of the
            // link end every lease in REBINDING. Ignoring another server's NAK costs at most the
            // time to expiry (lease - T2, an eighth of the lease by default), after which the lease
            // is lost and acquired again anyway, so only the bound server's NAK is taken.
            case (DhcpLeaseState.Renewing or DhcpLeaseState.Rebinding, DhcpMessageType.Nak):
                if (!sid.Equals(Server)) return DhcpOutput.Ignore($"a NAK to the renewal of {Address} from {source} naming server {sid}, not the bound server {Server}");
                return Lose($"server {Server} refused to renew {Address} (DHCPNAK{Said(m)})");
        }
        return DhcpOutput.Ignore($"a {m.MessageType} message in state {State}");
    }

    private static string Said(DhcpMessage m) => m.Text is { Length: > 0 } t ? $": \"{t}\"" : "";

    private DhcpOutput Bind(DhcpMessage ack, DhcpLeaseEvent ev)
    {
        if (ack.LeaseSeconds is not { } lease) return DhcpOutput.Ignore("an ACK without a lease time");
        // Under the floor the lease is not used at all (see DhcpTiming.MinLease): acquisition
        // fails with the reason at once, a renewal loses the lease. Nothing is released: the
        // server's binding ends within the floor by itself.
        if (_timing.TooShort(lease) is { } tooShort)
        {
            return ev == DhcpLeaseEvent.Bound
                ? Fail($"server {ack.ServerId} leased {ack.YourAddress} for {tooShort}")
                : Lose($"server {ack.ServerId} renewed {Address} for only {tooShort}");
        }
        // Times count from when the REQUEST went out (RFC 2131 §4.4.1), not from the ACK.
        var start = _requestSentAt;
        Address = ack.YourAddress;
        Ack = ack;
        Server = ack.ServerId!; // checked by Receive
        LeaseStart = start;
        if (lease == uint.MaxValue)
        {
            RenewAt = RebindAt = ExpiresAt = DateTimeOffset.MaxValue;
        }
        else
        {
            var (t1, t2) = _timing.Timers(lease, ack.RenewalSeconds, ack.RebindingSeconds, _random);
            ExpiresAt = start + TimeSpan.FromSeconds(lease);
            RebindAt = start + TimeSpan.FromSeconds(t2);
            RenewAt = start + TimeSpan.FromSeconds(t1);
        }
        State = DhcpLeaseState.Bound;
        _acquireDeadline = null;
        _restarts = 0;
        NextDeadline = RenewAt;
        return new(null, DhcpSendTo.Broadcast, ev);
    }

    // Each restart of this machine waits longer (DhcpTiming.RestartDelay), a DECLINE at least 10 s.
    private DhcpOutput Restart(string why, bool declined = false)
    {
        State = DhcpLeaseState.Init;
        Address = Server = _offered = null;
        NextDeadline = Now + _timing.RestartAfter(++_restarts, declined, _random);
        if (_acquireDeadline is { } d && d < NextDeadline) NextDeadline = d;
        return new(null, DhcpSendTo.Broadcast, DhcpLeaseEvent.Restarted, why);
    }

    private DhcpOutput Lose(string why)
    {
        State = DhcpLeaseState.Lost;
        NextDeadline = DateTimeOffset.MaxValue;
        return new(null, DhcpSendTo.Broadcast, DhcpLeaseEvent.Lost, why);
    }

    /// <summary>Timers: retransmission, T1, T2, expiry and the acquisition deadline.</summary>
    public DhcpOutput Tick()
    {
        var now = Now;
        if (now < NextDeadline) return DhcpOutput.Nothing;
        switch (State)
        {
            case DhcpLeaseState.Init:
                if (_acquireDeadline is { } d0 && now >= d0) return Fail();
                return Start();
            case DhcpLeaseState.Selecting:
                if (_acquireDeadline is { } d1 && now >= d1) return Fail();
                _attempt++;
                ScheduleRetransmit();
                return new(Acquiring(DhcpMessageType.Discover), DhcpSendTo.Broadcast, DhcpLeaseEvent.None);
            case DhcpLeaseState.Requesting:
                if (_acquireDeadline is { } d2 && now >= d2) return Fail();
                if (++_attempt >= _timing.RequestAttempts) return Discover();
                return Request();
            case DhcpLeaseState.Bound:
                State = DhcpLeaseState.Renewing;
                TransactionId = _nextXid();
                return Extend(DhcpSendTo.Server, RebindAt);
            case DhcpLeaseState.Renewing:
                if (now >= RebindAt)
                {
                    State = DhcpLeaseState.Rebinding;
                    TransactionId = _nextXid();
                }
                return State == DhcpLeaseState.Renewing ? Extend(DhcpSendTo.Server, RebindAt) : Tick();
            case DhcpLeaseState.Rebinding:
                if (now >= ExpiresAt)
                    return Lose($"the lease on {Address} from server {Server} expired at {ExpiresAt:HH:mm:ss.fff}Z: renewal and rebinding got no answer");
                return Extend(DhcpSendTo.Broadcast, ExpiresAt);
        }
        NextDeadline = DateTimeOffset.MaxValue;
        return DhcpOutput.Nothing;
    }

    // RENEWING (unicast to the server) and REBINDING (broadcast): REQUEST with ciaddr, retried at
    // half the time left, no closer than the minimum, and never past the limit.
    private DhcpOutput Extend(DhcpSendTo to, DateTimeOffset limit)
    {
        var now = Now;
        var wait = TimeSpan.FromTicks(Math.Max(_timing.MinRenewRetransmit.Ticks, (limit - now).Ticks / 2));
        NextDeadline = now + wait < limit ? now + wait : limit;
        _requestSentAt = now;
        var m = new DhcpMessage
        {
            MessageType = DhcpMessageType.Request,
            TransactionId = TransactionId,
            ClientAddress = Address!,
            HardwareAddress = _mac,
            ClientId = _clientId,
            ParameterRequests = Parameters,
            MaxMessageSize = MaxMessage,
            LeaseSeconds = _timing.RequestedLeaseSeconds,
        };
        return new(m, to, DhcpLeaseEvent.None);
    }

    private DhcpOutput Fail(string? why = null)
    {
        State = DhcpLeaseState.Failed;
        // Given up while a REQUEST was out: the server may have bound it without the ACK reaching us.
        RequestUnanswered = _offered is not null && why is null;
        NextDeadline = DateTimeOffset.MaxValue;
        string got = _offered is null ? "no DHCPOFFER" : $"an offer of {_offered} from {Server} but no DHCPACK";
        return new(null, DhcpSendTo.Broadcast, DhcpLeaseEvent.Failed, why ?? $"{got} within {_timing.AcquireTimeout.TotalSeconds:0.#} s");
    }

    /// <summary>DHCPRELEASE of a held lease (unicast, ciaddr set: dnsmasq ignores a release
    /// without it). Anything else just stops the machine.</summary>
    public DhcpOutput Release()
    {
        bool held = Holds;
        State = DhcpLeaseState.Released;
        NextDeadline = DateTimeOffset.MaxValue;
        if (!held) return DhcpOutput.Nothing;
        return new(ReleaseMessage(_nextXid(), Address!, Server!, _clientId, _mac), DhcpSendTo.Server, DhcpLeaseEvent.None);
    }

    /// <summary>A DHCPRELEASE built from the journal alone, for leases of a process that died.</summary>
    public static DhcpMessage ReleaseMessage(uint xid, IPAddress address, IPAddress server, byte[] clientId, byte[] mac) => new()
    {
        MessageType = DhcpMessageType.Release,
        TransactionId = xid,
        ClientAddress = address,
        ServerId = server,
        HardwareAddress = mac,
        ClientId = clientId,
    };

    /// <summary>DHCPDECLINE: the address turned out to be in use. Starts over after at least
    /// <see cref="DhcpTiming.DeclineDelay"/> (RFC 2131 §3.1 step 5: 10 s).</summary>
    public DhcpOutput Decline(string why)
    {
        if (State != DhcpLeaseState.Bound) throw new InvalidOperationException($"only a just-bound lease can be declined, not one in state {State}");
        var m = new DhcpMessage
        {
            MessageType = DhcpMessageType.Decline,
            TransactionId = TransactionId,
            RequestedAddress = Address,
            ServerId = Server,
            HardwareAddress = _mac,
            ClientId = _clientId,
            Text = why.Length > 200 ? why[..200] : why,
        };
        var restart = Restart($"declined {Address}: {why}", declined: true);
        return restart with { Send = m, To = DhcpSendTo.Broadcast };
    }
}
