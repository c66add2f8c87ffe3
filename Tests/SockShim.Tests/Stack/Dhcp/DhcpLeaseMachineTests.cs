using System.Net;
using Microsoft.Extensions.Time.Testing;
using SockShim.Stack.Dhcp;
using SockShim.Stack.Sources;
using SockShim.Stack.Wire;

namespace SockShim.Tests.Stack.Dhcp;

/// <summary>The lease machine against a scripted server, on a fake clock: no sockets, no sleeps.</summary>
public class DhcpLeaseMachineTests
{
    private static readonly byte[] Mac = DhcpWireTests.Mac;
    private static readonly IPAddress Server = IPAddress.Parse("192.0.2.1");
    private static readonly IPAddress Leased = IPAddress.Parse("198.51.100.23");

    private FakeTimeProvider _time = null!;
    private uint _xid;
    private byte[] _id = null!;

    [SetUp]
    public void SetUp()
    {
        _time = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-26T08:00:00Z"));
        _xid = 100;
        _id = ClientIdentifier.For(5, Mac);
    }

    private DhcpLeaseMachine Machine(DhcpTiming? timing = null) => new(_id, Mac, _time, timing ?? new DhcpTiming(), () => _xid++, new Random(1));

    private DhcpMessage Reply(DhcpLeaseMachine m, DhcpMessageType type, uint? lease = 60, IPAddress? server = null, IPAddress? yiaddr = null)
    {
        var r = DhcpWireTests.Ack(m.TransactionId, (yiaddr ?? Leased).ToString(), (server ?? Server).ToString(), _id);
        r.MessageType = type;
        r.LeaseSeconds = lease;
        r.RenewalSeconds = null;
        r.RebindingSeconds = null;
        return r;
    }

    private DhcpLeaseMachine BoundMachine(DhcpTiming? timing = null)
    {
        var m = Machine(timing);
        m.Start();
        m.Receive(Reply(m, DhcpMessageType.Offer), Server);
        Assert.That(m.Receive(Reply(m, DhcpMessageType.Ack), Server).Event, Is.EqualTo(DhcpLeaseEvent.Bound));
        return m;
    }

    [Test]
    public void Discover_offer_request_ack_binds_with_the_rfc_default_timers()
    {
        var m = Machine();
        var discover = m.Start();
        Assert.That(discover.Send!.MessageType, Is.EqualTo(DhcpMessageType.Discover));
        Assert.That(discover.To, Is.EqualTo(DhcpSendTo.Broadcast));
        Assert.That(discover.Send.Flags & DhcpMessage.BroadcastFlag, Is.Not.Zero, "no address yet: replies must be broadcast");
        Assert.That(discover.Send.ClientId, Is.EqualTo(_id));
        Assert.That(discover.Send.HardwareAddress, Is.EqualTo(Mac));
        uint xid = m.TransactionId;

        var request = m.Receive(Reply(m, DhcpMessageType.Offer), Server);
        Assert.That(request.Send!.MessageType, Is.EqualTo(DhcpMessageType.Request));
        Assert.That(request.Send.TransactionId, Is.EqualTo(xid), "REQUEST keeps the DISCOVER's xid");
        Assert.That(request.Send.RequestedAddress, Is.EqualTo(Leased));
        Assert.That(request.Send.ServerId, Is.EqualTo(Server));
        Assert.That(request.Send.ClientAddress, Is.EqualTo(IPAddress.Any));

        var start = _time.GetUtcNow();
        _time.Advance(TimeSpan.FromMilliseconds(3));
        var bound = m.Receive(Reply(m, DhcpMessageType.Ack, lease: 100), Server);
        Assert.That(bound.Event, Is.EqualTo(DhcpLeaseEvent.Bound));
        Assert.That(m.Address, Is.EqualTo(Leased));
        Assert.That(m.ExpiresAt, Is.EqualTo(start + TimeSpan.FromSeconds(100)), "times count from the REQUEST");
        // RFC 2131 §4.4.5 defaults, fuzzed earlier by up to a tenth, one factor for both.
        Assert.That(m.RenewAt, Is.InRange(start + TimeSpan.FromSeconds(45), start + TimeSpan.FromSeconds(50)));
        Assert.That(m.RebindAt, Is.InRange(start + TimeSpan.FromSeconds(78.75), start + TimeSpan.FromSeconds(87.5)));
        Assert.That((m.RebindAt - start) / (m.RenewAt - start), Is.EqualTo(1.75).Within(1e-6), "one fuzz factor keeps T2/T1");
        Assert.That(m.NextDeadline, Is.EqualTo(m.RenewAt));
    }

    [Test]
    public void Replies_for_another_transaction_hardware_address_client_or_server_are_ignored()
    {
        var m = Machine();
        m.Start();
        var otherXid = Reply(m, DhcpMessageType.Offer);
        otherXid.TransactionId++;
        var otherMac = Reply(m, DhcpMessageType.Offer);
        otherMac.HardwareAddress = [2, 0, 0, 0, 0, 1];
        var otherClient = Reply(m, DhcpMessageType.Offer);
        otherClient.ClientId = ClientIdentifier.For(6, Mac);
        var request = Reply(m, DhcpMessageType.Offer);
        request.Op = 1;
        foreach (var foreign in new[] { otherXid, otherMac, otherClient, request })
            Assert.That(m.Receive(foreign, Server).Event, Is.EqualTo(DhcpLeaseEvent.Ignored));
        Assert.That(m.State, Is.EqualTo(DhcpLeaseState.Selecting));

        m.Receive(Reply(m, DhcpMessageType.Offer), Server);
        Assert.That(m.Receive(Reply(m, DhcpMessageType.Ack, server: IPAddress.Parse("192.0.2.99")), Server).Event, Is.EqualTo(DhcpLeaseEvent.Ignored), "ACK from a server not selected");
        Assert.That(m.Receive(Reply(m, DhcpMessageType.Nak, server: IPAddress.Parse("192.0.2.99")), Server).Event, Is.EqualTo(DhcpLeaseEvent.Ignored));
        Assert.That(m.Receive(Reply(m, DhcpMessageType.Ack, yiaddr: IPAddress.Parse("198.51.100.24")), Server).Event, Is.EqualTo(DhcpLeaseEvent.Ignored));
        Assert.That(m.Receive(Reply(m, DhcpMessageType.Ack), Server).Event, Is.EqualTo(DhcpLeaseEvent.Bound));
    }

    [Test]
    public void Retransmissions_back_off_exponentially_with_jitter_then_acquisition_fails()
    {
        var timing = new DhcpTiming { FirstRetransmit = TimeSpan.FromSeconds(1), MaxRetransmit = TimeSpan.FromSeconds(4), AcquireTimeout = TimeSpan.FromSeconds(20) };
        var m = Machine(timing);
        m.Start();
        var gaps = new List<double>();
        var last = _time.GetUtcNow();
        DhcpOutput output;
        int steps = 0;
        do
        {
            _time.Advance(m.NextDeadline - _time.GetUtcNow());
            output = m.Tick();
            if (output.Send is not null)
            {
                Assert.That(output.Send.MessageType, Is.EqualTo(DhcpMessageType.Discover));
                gaps.Add((_time.GetUtcNow() - last).TotalSeconds);
                last = _time.GetUtcNow();
            }
        } while (output.Event != DhcpLeaseEvent.Failed && ++steps < 100);

        Assert.That(output.Event, Is.EqualTo(DhcpLeaseEvent.Failed));
        Assert.That(output.Reason, Does.Contain("no DHCPOFFER within 20 s"));
        Assert.That(gaps[0], Is.InRange(0.75, 1.25));
        Assert.That(gaps[1], Is.InRange(1.5, 2.5));
        Assert.That(gaps[2], Is.InRange(3, 5));
        Assert.That(gaps.Skip(3), Has.All.InRange(3, 5), "capped at the maximum");
        Assert.That(_time.GetUtcNow() - DateTimeOffset.Parse("2026-11-26T08:00:00Z"), Is.EqualTo(TimeSpan.FromSeconds(20)));
    }

    [Test]
    public void A_nak_to_the_request_starts_over_with_a_new_transaction()
    {
        var m = Machine();
        m.Start();
        m.Receive(Reply(m, DhcpMessageType.Offer), Server);
        uint first = m.TransactionId;
        var nak = Reply(m, DhcpMessageType.Nak, lease: null);
        nak.Text = "wrong network";
        var restarted = m.Receive(nak, Server);
        Assert.That(restarted.Event, Is.EqualTo(DhcpLeaseEvent.Restarted));
        Assert.That(restarted.Reason, Does.Contain("DHCPNAK: \"wrong network\""));
        Assert.That(m.State, Is.EqualTo(DhcpLeaseState.Init));

        _time.Advance(new DhcpTiming().RestartDelay);
        var discover = m.Tick();
        Assert.That(discover.Send!.MessageType, Is.EqualTo(DhcpMessageType.Discover));
        Assert.That(m.TransactionId, Is.Not.EqualTo(first));
        m.Receive(Reply(m, DhcpMessageType.Offer), Server);
        Assert.That(m.Receive(Reply(m, DhcpMessageType.Ack), Server).Event, Is.EqualTo(DhcpLeaseEvent.Bound));
    }

    [Test]
    public void An_unanswered_request_is_retried_then_discovery_starts_over()
    {
        var m = Machine(new DhcpTiming { RequestAttempts = 3 });
        m.Start();
        m.Receive(Reply(m, DhcpMessageType.Offer), Server);
        var sent = new List<DhcpMessageType?>();
        for (int i = 0; i < 3; i++)
        {
            _time.Advance(m.NextDeadline - _time.GetUtcNow());
            sent.Add(m.Tick().Send?.MessageType);
        }
        Assert.That(sent, Is.EqualTo(new DhcpMessageType?[] { DhcpMessageType.Request, DhcpMessageType.Request, DhcpMessageType.Discover }));
    }

    [Test]
    public void Renewal_at_t1_is_unicast_from_the_lease_and_extends_it()
    {
        var m = BoundMachine();
        _time.Advance(m.RenewAt - _time.GetUtcNow());
        var renew = m.Tick();
        Assert.That(m.State, Is.EqualTo(DhcpLeaseState.Renewing));
        Assert.That(renew.To, Is.EqualTo(DhcpSendTo.Server));
        Assert.That(renew.Send!.MessageType, Is.EqualTo(DhcpMessageType.Request));
        Assert.That(renew.Send.ClientAddress, Is.EqualTo(Leased));
        Assert.That(renew.Send.RequestedAddress, Is.Null, "RENEWING must not send option 50");
        Assert.That(renew.Send.ServerId, Is.Null, "RENEWING must not send option 54");
        Assert.That(renew.Send.Flags, Is.Zero);

        var renewedAt = _time.GetUtcNow();
        var ack = m.Receive(Reply(m, DhcpMessageType.Ack, lease: 60), Server);
        Assert.That(ack.Event, Is.EqualTo(DhcpLeaseEvent.Renewed));
        Assert.That(m.State, Is.EqualTo(DhcpLeaseState.Bound));
        Assert.That(m.ExpiresAt, Is.EqualTo(renewedAt + TimeSpan.FromSeconds(60)));
    }

    [Test]
    public void Without_answers_renewing_becomes_rebinding_and_the_lease_is_lost_at_expiry()
    {
        var m = BoundMachine();
        var expires = m.ExpiresAt;
        var sends = new List<(DhcpSendTo, DateTimeOffset)>();
        DhcpOutput output = default;
        for (int i = 0; i < 100 && output.Event != DhcpLeaseEvent.Lost; i++)
        {
            _time.Advance(m.NextDeadline - _time.GetUtcNow());
            output = m.Tick();
            if (output.Send is not null) sends.Add((output.To, _time.GetUtcNow()));
        }
        Assert.That(output.Event, Is.EqualTo(DhcpLeaseEvent.Lost));
        Assert.That(output.Reason, Does.Contain("expired").And.Contain(Leased.ToString()));
        Assert.That(_time.GetUtcNow(), Is.EqualTo(expires));
        Assert.That(sends.First(), Is.EqualTo((DhcpSendTo.Server, m.RenewAt)));
        Assert.That(sends.Where(s => s.Item1 == DhcpSendTo.Broadcast).Select(s => s.Item2), Has.All.GreaterThanOrEqualTo(m.RebindAt).And.All.LessThan(expires));
        Assert.That(sends.Count(s => s.Item1 == DhcpSendTo.Broadcast), Is.GreaterThanOrEqualTo(2));
        Assert.That(m.NextDeadline, Is.EqualTo(DateTimeOffset.MaxValue));
    }

    [Test]
    public void A_nak_to_a_renewal_loses_the_lease_at_once()
    {
        var m = BoundMachine();
        _time.Advance(m.RenewAt - _time.GetUtcNow());
        m.Tick();
        var lost = m.Receive(Reply(m, DhcpMessageType.Nak, lease: null), Server);
        Assert.That(lost.Event, Is.EqualTo(DhcpLeaseEvent.Lost));
        Assert.That(lost.Reason, Does.Contain("refused to renew"));
    }

    [Test]
    public void Release_carries_ciaddr_and_server_and_stops_the_machine()
    {
        var m = BoundMachine();
        var release = m.Release();
        Assert.That(release.Send!.MessageType, Is.EqualTo(DhcpMessageType.Release));
        Assert.That(release.To, Is.EqualTo(DhcpSendTo.Server));
        Assert.That(release.Send.ClientAddress, Is.EqualTo(Leased), "dnsmasq ignores a release without ciaddr");
        Assert.That(release.Send.ServerId, Is.EqualTo(Server));
        Assert.That(release.Send.ClientId, Is.EqualTo(_id));
        Assert.That(m.State, Is.EqualTo(DhcpLeaseState.Released));
        Assert.That(m.Release().Send, Is.Null, "a second release sends nothing");
    }

    [Test]
    public void Decline_names_the_address_and_starts_over()
    {
        var m = BoundMachine();
        var decline = m.Decline("address already in use");
        Assert.That(decline.Send!.MessageType, Is.EqualTo(DhcpMessageType.Decline));
        Assert.That(decline.Send.RequestedAddress, Is.EqualTo(Leased));
        Assert.That(decline.Send.ServerId, Is.EqualTo(Server));
        Assert.That(decline.Send.ClientAddress, Is.EqualTo(IPAddress.Any));
        Assert.That(decline.Event, Is.EqualTo(DhcpLeaseEvent.Restarted));
        _time.Advance(m.NextDeadline - _time.GetUtcNow());
        Assert.That(m.Tick().Send!.MessageType, Is.EqualTo(DhcpMessageType.Discover));
    }

    private static readonly IPAddress Other = IPAddress.Parse("192.0.2.66");

    /// <summary>A bound machine at T1, its renewal REQUEST sent.</summary>
    private DhcpLeaseMachine RenewingMachine()
    {
        var m = BoundMachine();
        _time.Advance(m.RenewAt - _time.GetUtcNow());
        m.Tick();
        Assert.That(m.State, Is.EqualTo(DhcpLeaseState.Renewing));
        return m;
    }

    private static void AssertIgnored(DhcpLeaseMachine m, DhcpMessage reply, IPAddress from, DhcpLeaseState stays, string what)
    {
        var expires = m.ExpiresAt;
        var output = m.Receive(reply, from);
        Assert.That(output.Event, Is.EqualTo(DhcpLeaseEvent.Ignored), what);
        Assert.That(output.Reason, Is.Not.Empty, what);
        Assert.That((m.State, m.Address, m.Server, m.ExpiresAt), Is.EqualTo((stays, Leased, Server, expires)), what + ": the lease is unchanged");
    }

    [Test]
    public void While_renewing_only_the_bound_server_from_its_own_address_is_heard()
    {
        var m = RenewingMachine();
        AssertIgnored(m, Reply(m, DhcpMessageType.Nak, lease: null, server: Other), Other, DhcpLeaseState.Renewing, "a NAK naming another server");
        AssertIgnored(m, Reply(m, DhcpMessageType.Nak, lease: null, server: Other), Server, DhcpLeaseState.Renewing, "a NAK from the server's address naming another server");
        AssertIgnored(m, Reply(m, DhcpMessageType.Nak, lease: null), Other, DhcpLeaseState.Renewing, "a NAK naming the server from another address");
        AssertIgnored(m, Reply(m, DhcpMessageType.Ack), Other, DhcpLeaseState.Renewing, "an ACK naming the server from another address");
        AssertIgnored(m, Reply(m, DhcpMessageType.Ack, server: Other), Other, DhcpLeaseState.Renewing, "an ACK from another server");
        var noId = Reply(m, DhcpMessageType.Nak, lease: null);
        noId.ServerId = null;
        AssertIgnored(m, noId, Server, DhcpLeaseState.Renewing, "a NAK without a server id");
        var ackNoId = Reply(m, DhcpMessageType.Ack);
        ackNoId.ServerId = null;
        AssertIgnored(m, ackNoId, Server, DhcpLeaseState.Renewing, "an ACK without a server id");

        Assert.That(m.Receive(Reply(m, DhcpMessageType.Ack), Server).Event, Is.EqualTo(DhcpLeaseEvent.Renewed), "the bound server still renews");
        Assert.That(m.State, Is.EqualTo(DhcpLeaseState.Bound));
    }

    [Test]
    public void An_ack_for_another_address_neither_ends_nor_moves_a_held_lease()
    {
        var m = RenewingMachine();
        AssertIgnored(m, Reply(m, DhcpMessageType.Ack, yiaddr: IPAddress.Parse("198.51.100.99")), Server, DhcpLeaseState.Renewing, "renewing, from the bound server");
        _time.Advance(m.RebindAt - _time.GetUtcNow());
        m.Tick();
        Assert.That(m.State, Is.EqualTo(DhcpLeaseState.Rebinding));
        AssertIgnored(m, Reply(m, DhcpMessageType.Ack, yiaddr: IPAddress.Parse("198.51.100.99"), server: Other), Other, DhcpLeaseState.Rebinding, "rebinding, from another server");
        AssertIgnored(m, Reply(m, DhcpMessageType.Ack, yiaddr: IPAddress.Parse("198.51.100.99")), Server, DhcpLeaseState.Rebinding, "rebinding, from the bound server");
    }

    [Test]
    public void While_rebinding_any_server_may_extend_but_only_the_bound_one_may_refuse()
    {
        var m = RenewingMachine();
        _time.Advance(m.RebindAt - _time.GetUtcNow());
        m.Tick();
        Assert.That(m.State, Is.EqualTo(DhcpLeaseState.Rebinding));
        AssertIgnored(m, Reply(m, DhcpMessageType.Nak, lease: null, server: Other), Other, DhcpLeaseState.Rebinding, "a NAK from another server");
        var noId = Reply(m, DhcpMessageType.Ack);
        noId.ServerId = null;
        AssertIgnored(m, noId, Server, DhcpLeaseState.Rebinding, "an ACK without a server id");

        var renewed = m.Receive(Reply(m, DhcpMessageType.Ack, server: Other), Other);
        Assert.That(renewed.Event, Is.EqualTo(DhcpLeaseEvent.Renewed), "REBINDING takes an ACK from any server");
        Assert.That((m.State, m.Server), Is.EqualTo((DhcpLeaseState.Bound, Other)), "the lease is now that server's");
    }

    /// <summary>A failover pair (Kea HA): the bound server dies, its standby has the lease. The
    /// renewal goes unanswered to the dead one until T2, the broadcast rebinding gets the
    /// standby's ACK, and from then on the lease is the standby's: the next renewal is unicast
    /// to it, the dead server's word no longer counts, and the release goes to the standby.</summary>
    [Test]
    public void After_the_bound_server_dies_rebinding_moves_the_lease_to_the_server_that_answers()
    {
        var m = BoundMachine();
        var expires = m.ExpiresAt;
        var unanswered = new List<(DhcpSendTo To, IPAddress? Server)>();
        while (m.State != DhcpLeaseState.Rebinding)
        {
            _time.Advance(m.NextDeadline - _time.GetUtcNow());
            var sent = m.Tick();
            unanswered.Add((sent.To, m.Server));
        }
        Assert.That(unanswered.SkipLast(1), Has.All.EqualTo((DhcpSendTo.Server, Server)), "renewing: unicast to the bound server only");
        Assert.That(unanswered.Last().To, Is.EqualTo(DhcpSendTo.Broadcast), "rebinding: broadcast at T2");
        Assert.That(_time.GetUtcNow(), Is.LessThan(expires));

        var rebindSentAt = _time.GetUtcNow();
        _time.Advance(TimeSpan.FromMilliseconds(2));
        var standby = m.Receive(Reply(m, DhcpMessageType.Ack, lease: 60, server: Other), Other);
        Assert.That(standby.Event, Is.EqualTo(DhcpLeaseEvent.Renewed));
        Assert.That((m.State, m.Server, m.Address), Is.EqualTo((DhcpLeaseState.Bound, Other, Leased)), "the same address, now the standby's");
        Assert.That(m.ExpiresAt, Is.EqualTo(rebindSentAt + TimeSpan.FromSeconds(60)), "the lifetime counts from the rebinding REQUEST");

        _time.Advance(m.RenewAt - _time.GetUtcNow());
        var renew = m.Tick();
        Assert.That((renew.To, m.Server, renew.Send!.ClientAddress), Is.EqualTo((DhcpSendTo.Server, Other, Leased)), "the next renewal is unicast to the standby");
        Assert.That(m.Receive(Reply(m, DhcpMessageType.Nak, lease: null), Server).Event, Is.EqualTo(DhcpLeaseEvent.Ignored), "the old server's NAK, back from the dead");
        Assert.That((m.State, m.Server), Is.EqualTo((DhcpLeaseState.Renewing, Other)), "the lease is unchanged");
        Assert.That(m.Receive(Reply(m, DhcpMessageType.Ack, lease: 60, server: Other), Other).Event, Is.EqualTo(DhcpLeaseEvent.Renewed));

        var release = m.Release();
        Assert.That((release.To, release.Send!.ServerId, release.Send.ClientAddress), Is.EqualTo((DhcpSendTo.Server, Other, Leased)), "released where it is held");
    }

    [Test]
    public void A_nak_with_the_right_server_id_while_rebinding_ends_the_lease()
    {
        var m = RenewingMachine();
        _time.Advance(m.RebindAt - _time.GetUtcNow());
        m.Tick();
        // Rebinding is broadcast: relays may carry the answer, so the source is not checked.
        Assert.That(m.Receive(Reply(m, DhcpMessageType.Nak, lease: null), Other).Event, Is.EqualTo(DhcpLeaseEvent.Lost));
    }

    [Test]
    public void A_reply_without_our_client_identifier_counts_only_from_the_lease_server()
    {
        // Selecting and requesting: dnsmasq 2.90 leaves option 61 out and answers from another of
        // its addresses than the server id it names; its offer and ACK must still lease.
        var m = Machine();
        m.Start();
        var offer = Reply(m, DhcpMessageType.Offer);
        offer.ClientId = null;
        Assert.That(m.Receive(offer, Other).Event, Is.EqualTo(DhcpLeaseEvent.None), "an offer without option 61 from another address of the server");
        Assert.That(m.State, Is.EqualTo(DhcpLeaseState.Requesting));
        var foreignNak = Reply(m, DhcpMessageType.Nak, lease: null, server: Other);
        foreignNak.ClientId = null;
        Assert.That(m.Receive(foreignNak, Other).Event, Is.EqualTo(DhcpLeaseEvent.Ignored), "a NAK without option 61 from a server not selected");
        var ack = Reply(m, DhcpMessageType.Ack);
        ack.ClientId = null;
        Assert.That(m.Receive(ack, Other).Event, Is.EqualTo(DhcpLeaseEvent.Bound), "the selected server's ACK without option 61");

        // Renewing: without option 61 from another address, with another identifier from the server.
        var r = RenewingMachine();
        var forged = Reply(r, DhcpMessageType.Nak, lease: null);
        forged.ClientId = null;
        AssertIgnored(r, forged, Other, DhcpLeaseState.Renewing, "a NAK without option 61 from another address");
        var foreign = Reply(r, DhcpMessageType.Nak, lease: null);
        foreign.ClientId = ClientIdentifier.For(6, Mac);
        AssertIgnored(r, foreign, Server, DhcpLeaseState.Renewing, "a NAK for another of this host's leases (same MAC, another IAID)");

        // Rebinding: another server's ACK counts only with our option 61.
        _time.Advance(r.RebindAt - _time.GetUtcNow());
        r.Tick();
        Assert.That(r.State, Is.EqualTo(DhcpLeaseState.Rebinding));
        var other = Reply(r, DhcpMessageType.Ack, server: Other);
        other.ClientId = null;
        AssertIgnored(r, other, Other, DhcpLeaseState.Rebinding, "another server's ACK without option 61");
        var bound = Reply(r, DhcpMessageType.Ack);
        bound.ClientId = null;
        Assert.That(r.Receive(bound, Other).Event, Is.EqualTo(DhcpLeaseEvent.Renewed), "the bound server's ACK without option 61, relayed or from another of its addresses");
    }

    [Test]
    public void Transaction_ids_are_random_not_a_counter()
    {
        var ids = new TransactionIds();
        var drawn = Enumerable.Range(0, 10_000).Select(_ => ids.Next()).ToList();
        var steps = drawn.Zip(drawn.Skip(1), (a, b) => unchecked(b - a)).ToList();
        Assert.That(drawn, Has.None.EqualTo(0u));
        Assert.That(drawn.Distinct().Count(), Is.GreaterThan(9_990), "32 random bits: a repeat in 10,000 is rare");
        Assert.That(steps.Count(d => d == 1), Is.LessThanOrEqualTo(1), "consecutive transactions are not sequential");
        Assert.That(steps.Distinct().Count(), Is.GreaterThan(9_990), "no fixed stride either");
        // The top bit is set about half the time: the values spread over all 32 bits, not a small range.
        Assert.That(drawn.Count(x => x >= 0x8000_0000u), Is.InRange(4_500, 5_500));
    }
}
