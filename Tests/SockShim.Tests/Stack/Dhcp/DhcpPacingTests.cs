using System.Net;
using Microsoft.Extensions.Time.Testing;
using SockShim.Stack.Dhcp;
using SockShim.Stack.Sources;
using SockShim.Stack.Wire;

namespace SockShim.Tests.Stack.Dhcp;

/// <summary>Floors and pacing of the lease machine (issue 16): what a careless server sends
/// (a lease of 0 s, T1 = 0) does not make it send without pause, renewals of many leases do not
/// fire together, restarts back off. All on a fake clock against a server that answers every
/// message at once.</summary>
[CancelAfter(30_000)]
public class DhcpPacingTests
{
    private static readonly byte[] Mac = DhcpWireTests.Mac;
    private static readonly IPAddress Server = IPAddress.Parse("192.0.2.1");
    private static readonly IPAddress Leased = IPAddress.Parse("198.51.100.23");
    private static readonly DateTimeOffset T0 = DateTimeOffset.Parse("2026-11-26T08:00:00Z");

    private FakeTimeProvider _time = null!;
    private uint _xid;
    private byte[] _id = null!;

    [SetUp]
    public void SetUp()
    {
        _time = new FakeTimeProvider(T0);
        _xid = 100;
        _id = ClientIdentifier.For(5, Mac);
    }

    private DhcpLeaseMachine Machine(DhcpTiming? timing = null, int seed = 1) =>
        new(_id, Mac, _time, timing ?? new DhcpTiming(), () => _xid++, new Random(seed));

    private DhcpMessage Reply(DhcpLeaseMachine m, DhcpMessageType type, uint? lease, uint? t1 = null, uint? t2 = null)
    {
        var r = DhcpWireTests.Ack(m.TransactionId, Leased.ToString(), Server.ToString(), _id);
        r.MessageType = type;
        r.LeaseSeconds = lease;
        r.RenewalSeconds = t1;
        r.RebindingSeconds = t2;
        return r;
    }

    private DhcpLeaseMachine Bound(uint lease, uint? t1 = null, uint? t2 = null, int seed = 1, DhcpTiming? timing = null)
    {
        var m = Machine(timing, seed);
        m.Start();
        m.Receive(Reply(m, DhcpMessageType.Offer, lease), Server);
        Assert.That(m.Receive(Reply(m, DhcpMessageType.Ack, lease, t1, t2), Server).Event, Is.EqualTo(DhcpLeaseEvent.Bound));
        return m;
    }

    /// <summary>Runs a machine for <paramref name="span"/> of fake time against a server that
    /// answers each DISCOVER with an OFFER and each REQUEST with <paramref name="ack"/>, at once.
    /// Returns the times of the messages the machine sent and its events. A machine that sends
    /// without letting time pass stops the run at 10,000 steps, so a storm shows as a count.</summary>
    private (List<DateTimeOffset> Sent, List<DhcpOutput> Events) Run(DhcpLeaseMachine m, Func<DhcpLeaseMachine, DhcpMessage> ack, TimeSpan span)
    {
        var sent = new List<DateTimeOffset>();
        var events = new List<DhcpOutput>();
        var end = _time.GetUtcNow() + span;
        var output = m.Start();
        for (int step = 0; step < 10_000; step++)
        {
            while (output.Send is { } message && sent.Count < 10_000)
            {
                sent.Add(_time.GetUtcNow());
                DhcpMessage? reply = message.MessageType switch
                {
                    DhcpMessageType.Discover => Reply(m, DhcpMessageType.Offer, 60),
                    DhcpMessageType.Request => ack(m),
                    _ => null,
                };
                if (reply is null) break;
                output = m.Receive(reply, Server);
                if (output.Event is not (DhcpLeaseEvent.None or DhcpLeaseEvent.Ignored)) events.Add(output);
            }
            if (m.NextDeadline > end) break;
            if (m.NextDeadline > _time.GetUtcNow()) _time.Advance(m.NextDeadline - _time.GetUtcNow());
            output = m.Tick();
            if (output.Event is not (DhcpLeaseEvent.None or DhcpLeaseEvent.Ignored)) events.Add(output);
        }
        return (sent, events);
    }

    [Test]
    public void A_lease_of_0_s_is_not_bound_and_acquisition_fails_at_once_with_the_reason()
    {
        var m = Machine();
        var (sent, events) = Run(m, mm => Reply(mm, DhcpMessageType.Ack, 0), TimeSpan.FromSeconds(30));

        Assert.That(sent, Has.Count.EqualTo(2), "one DISCOVER and one REQUEST in 30 s, no loop");
        Assert.That(events.Select(e => e.Event), Is.EqualTo(new[] { DhcpLeaseEvent.Failed }), "never bound, never restarted");
        Assert.That(events[0].Reason, Does.Contain("leased 198.51.100.23 for 0 s, shorter than the 4 s").And.Contain("RFC 2131"));
        Assert.That(m.State, Is.EqualTo(DhcpLeaseState.Failed));
        Assert.That(m.Address, Is.Null, "no address to configure");
    }

    [TestCase(1u)]
    [TestCase(3u)]
    public void A_lease_under_the_floor_is_refused_but_one_at_the_floor_binds(uint lease)
    {
        var m = Machine();
        m.Start();
        m.Receive(Reply(m, DhcpMessageType.Offer, lease), Server);
        var refused = m.Receive(Reply(m, DhcpMessageType.Ack, lease), Server);
        Assert.That((refused.Event, refused.Reason), Is.EqualTo((DhcpLeaseEvent.Failed, $"server 192.0.2.1 leased 198.51.100.23 for {lease} s, shorter than the 4 s a lease needs to be renewed before it ends (RFC 2131 §4.4.5)")));

        var atFloor = Bound(4);
        Assert.That(atFloor.ExpiresAt - T0, Is.EqualTo(TimeSpan.FromSeconds(4)), "the server's lease time is kept, not stretched");
        Assert.That(atFloor.RenewAt - T0, Is.EqualTo(TimeSpan.FromSeconds(2)), "T1 at its 2 s floor");
        Assert.That(atFloor.RebindAt - T0, Is.InRange(TimeSpan.FromSeconds(3.15), TimeSpan.FromSeconds(3.5)));
    }

    [Test]
    public void A_renewal_acked_with_a_lease_of_0_s_loses_the_lease_with_the_reason()
    {
        var m = Bound(60);
        _time.Advance(m.RenewAt - _time.GetUtcNow());
        Assert.That(m.Tick().Send!.MessageType, Is.EqualTo(DhcpMessageType.Request));
        var lost = m.Receive(Reply(m, DhcpMessageType.Ack, 0), Server);
        Assert.That(lost.Event, Is.EqualTo(DhcpLeaseEvent.Lost));
        Assert.That(lost.Reason, Does.Contain("renewed 198.51.100.23 for only 0 s, shorter than the 4 s"));
        Assert.That(m.NextDeadline, Is.EqualTo(DateTimeOffset.MaxValue), "nothing more is sent");
    }

    /// <summary>T1 = 0 used to make each renewal ACK schedule the next renewal at once. With a
    /// lease at the 4 s floor, renewals come at most every 2 s: 2 packets to acquire plus at most
    /// 15 renewals in 30 s, and the lease is held throughout.</summary>
    [TestCase(4u, 0u, null)]
    [TestCase(4u, 0u, 0u)]
    [TestCase(6u, 1u, 6u)]
    [TestCase(60u, 0u, 0u)]
    public void An_ack_with_t1_0_renews_no_more_than_every_2_s(uint lease, uint t1, uint? t2)
    {
        var m = Machine();
        var (sent, events) = Run(m, mm => Reply(mm, DhcpMessageType.Ack, lease, t1, t2), TimeSpan.FromSeconds(30));

        Assert.That(sent, Has.Count.LessThanOrEqualTo(17), "packets sent in 30 s");
        var gaps = sent.Skip(1).Zip(sent.Skip(2), (a, b) => (b - a).TotalSeconds).ToList();
        Assert.That(gaps, Has.All.GreaterThanOrEqualTo(2.0), "renewals at least T1's 2 s floor apart");
        Assert.That(events.Select(e => e.Event), Has.Exactly(1).EqualTo(DhcpLeaseEvent.Bound).And.All.AnyOf(DhcpLeaseEvent.Bound, DhcpLeaseEvent.Renewed));
        Assert.That(m.Holds, Is.True, "the lease is kept");
        if (lease < 10) Assert.That(sent, Has.Count.GreaterThanOrEqualTo(10), "a short lease is still renewed in time");
    }

    [TestCase(3600u, 2000u, 1000u, TestName = "T1 after T2: the RFC defaults")]
    [TestCase(3600u, 1800u, 3600u, TestName = "T2 at the lease's end: the RFC defaults")]
    [TestCase(3600u, 1800u, 9000u, TestName = "T2 past the lease's end: the RFC defaults")]
    [TestCase(3600u, 1u, 3000u, TestName = "T1 under its floor: the RFC defaults")]
    public void Timers_out_of_order_or_under_the_floor_fall_back_to_the_rfc_defaults(uint lease, uint t1, uint t2)
    {
        var m = Bound(lease, t1, t2);
        double renew = (m.RenewAt - T0).TotalSeconds, rebind = (m.RebindAt - T0).TotalSeconds;
        Assert.That(renew, Is.InRange(0.9 * 1800, 1800));
        Assert.That(rebind, Is.InRange(0.9 * 3150, 3150));
        Assert.That((m.ExpiresAt - T0).TotalSeconds, Is.EqualTo(lease));
    }

    /// <summary>RFC 2131 §4.4.5's fuzz: 100 leases bound at the same instant with the same
    /// server values renew and rebind at spread times, each within a tenth before the server's
    /// value, T1 before T2 before expiry.</summary>
    [TestCase(3600u, 1800u, 3150u)]
    [TestCase(20u, 5u, 15u)]
    public void T1_and_t2_of_100_leases_bound_together_are_spread(uint lease, uint t1, uint t2)
    {
        var machines = Enumerable.Range(0, 100).Select(seed => Bound(lease, t1, t2, seed)).ToList();
        var renew = machines.Select(m => (m.RenewAt - T0).TotalSeconds).ToList();
        var rebind = machines.Select(m => (m.RebindAt - T0).TotalSeconds).ToList();

        Assert.That(renew.Distinct().Count(), Is.GreaterThanOrEqualTo(95), "T1 not in step");
        Assert.That(rebind.Distinct().Count(), Is.GreaterThanOrEqualTo(95), "T2 not in step");
        Assert.That(renew.Max() - renew.Min(), Is.GreaterThan(0.05 * t1), "T1 spread over more than half the fuzz range");
        Assert.That(renew, Has.All.InRange(0.9 * t1, t1));
        Assert.That(rebind, Has.All.InRange(0.9 * t2, t2));
        Assert.That(machines, Has.All.Matches<DhcpLeaseMachine>(m => m.RenewAt < m.RebindAt && m.RebindAt < m.ExpiresAt));
        // The largest number of renewals within any one second, out of 100.
        int peak = renew.Max(r => renew.Count(o => o >= r && o < r + 1));
        if (lease == 3600) Assert.That(peak, Is.LessThanOrEqualTo(10), "renewals per second at the peak");
    }

    [Test]
    public void Discovery_restarts_at_least_10_s_after_a_decline()
    {
        var m = Bound(60);
        var declinedAt = _time.GetUtcNow();
        var decline = m.Decline("address already in use");
        Assert.That(decline.Send!.MessageType, Is.EqualTo(DhcpMessageType.Decline));
        Assert.That(m.NextDeadline - declinedAt, Is.GreaterThanOrEqualTo(TimeSpan.FromSeconds(10)));

        _time.Advance(TimeSpan.FromSeconds(10) - TimeSpan.FromMilliseconds(1));
        Assert.That(m.Tick().Send, Is.Null, "nothing before 10 s");
        Assert.That(m.State, Is.EqualTo(DhcpLeaseState.Init));
        _time.Advance(m.NextDeadline - _time.GetUtcNow());
        Assert.That(m.Tick().Send!.MessageType, Is.EqualTo(DhcpMessageType.Discover));
    }

    /// <summary>A server that NAKs every REQUEST: each restart waits twice as long as the one
    /// before (less up to a quarter, randomized), from 1 s up to the 64 s cap; a bind resets it,
    /// so the next DECLINE waits its 10 s, not the backoff reached before.</summary>
    [Test]
    public void Repeated_naks_back_off_exponentially_up_to_a_cap_and_a_bind_resets_it()
    {
        var m = Machine(new DhcpTiming { AcquireTimeout = TimeSpan.FromHours(1) });
        m.Start();
        var gaps = new List<double>();
        for (int i = 0; i < 10; i++)
        {
            m.Receive(Reply(m, DhcpMessageType.Offer, 60), Server);
            Assert.That(m.Receive(Reply(m, DhcpMessageType.Nak, null), Server).Event, Is.EqualTo(DhcpLeaseEvent.Restarted));
            var nakAt = _time.GetUtcNow();
            gaps.Add((m.NextDeadline - nakAt).TotalSeconds);
            _time.Advance(m.NextDeadline - nakAt);
            Assert.That(m.Tick().Send!.MessageType, Is.EqualTo(DhcpMessageType.Discover));
        }
        double[] steps = [1, 2, 4, 8, 16, 32, 64, 64, 64, 64];
        for (int i = 0; i < steps.Length; i++)
            Assert.That(gaps[i], Is.InRange(0.75 * steps[i], steps[i]), $"restart {i + 1}: {string.Join(", ", gaps.Select(g => g.ToString("F2")))}");

        m.Receive(Reply(m, DhcpMessageType.Offer, 60), Server);
        Assert.That(m.Receive(Reply(m, DhcpMessageType.Ack, 60), Server).Event, Is.EqualTo(DhcpLeaseEvent.Bound));
        var declinedAt = _time.GetUtcNow();
        m.Decline("address already in use");
        Assert.That(m.NextDeadline - declinedAt, Is.EqualTo(TimeSpan.FromSeconds(10)), "the backoff starts again after a bind");
    }

    [Test]
    public void Restarts_stay_inside_the_acquisition_time_and_then_fail()
    {
        var m = Machine();
        var (sent, events) = Run(m, mm => Reply(mm, DhcpMessageType.Nak, null), TimeSpan.FromSeconds(30));
        Assert.That(events.Last().Event, Is.EqualTo(DhcpLeaseEvent.Failed));
        Assert.That(_time.GetUtcNow() - T0, Is.EqualTo(new DhcpTiming().AcquireTimeout), "fails at the acquisition deadline");
        Assert.That(events.Count(e => e.Event == DhcpLeaseEvent.Restarted), Is.InRange(4, 5), "a NAK at about 0, 1, 3, 7 and 14 s: backoff of 1 + 2 + 4 + 8 s, less up to a quarter, in 15 s");
        Assert.That(sent, Has.Count.LessThanOrEqualTo(10), "a DISCOVER and a REQUEST per try");
    }
}
