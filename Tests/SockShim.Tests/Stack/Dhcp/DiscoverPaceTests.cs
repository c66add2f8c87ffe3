using Microsoft.Extensions.Time.Testing;
using SockShim.Stack.Dhcp;

namespace SockShim.Tests.Stack.Dhcp;

/// <summary>The pace of new DHCP transactions (issue 16): a token bucket and the pool-level hold
/// after repeated losses, on a fake clock.</summary>
[CancelAfter(10_000)]
public class DiscoverPaceTests
{
    private static readonly DateTimeOffset T0 = DateTimeOffset.Parse("2026-11-26T08:00:00Z");
    private FakeTimeProvider _time = null!;

    [SetUp]
    public void SetUp() => _time = new FakeTimeProvider(T0);

    /// <summary>Takes tokens as fast as they come for <paramref name="span"/>; the times taken.</summary>
    private List<DateTimeOffset> Drain(DiscoverPace pace, TimeSpan span)
    {
        var taken = new List<DateTimeOffset>();
        var end = _time.GetUtcNow() + span;
        while (_time.GetUtcNow() < end)
        {
            if (pace.TryTake(out var retryAt)) taken.Add(_time.GetUtcNow());
            else
            {
                Assert.That(retryAt, Is.GreaterThan(_time.GetUtcNow()), "a refusal names a later time");
                _time.SetUtcNow(retryAt);
            }
        }
        return taken;
    }

    [Test]
    public void The_default_lets_a_burst_of_four_go_then_eight_a_second()
    {
        var pace = new DiscoverPace(DiscoverPace.DefaultRate, _time);
        Assert.That((pace.Rate, pace.Burst), Is.EqualTo((8.0, 4.0)));
        Assert.That(Enumerable.Range(0, 4).All(i => pace.TryTake(out _)), Is.True, "the burst goes at once");
        Assert.That(pace.TryTake(out var retryAt), Is.False, "the fifth waits");
        Assert.That(retryAt, Is.EqualTo(T0 + TimeSpan.FromMilliseconds(125)), "for an eighth of a second");
        _time.Advance(TimeSpan.FromMilliseconds(124));
        Assert.That(pace.TryTake(out _), Is.False, "not a tick early");
        _time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.That(pace.TryTake(out _), Is.True);
    }

    /// <summary>No one-second window, anywhere in a minute of taking as fast as allowed, holds
    /// more than burst + rate tokens: the bound the wire tests hold the capture to.</summary>
    [TestCase(4)]
    [TestCase(20)]
    [TestCase(0.5)]
    public void No_second_holds_more_than_burst_plus_rate(double rate)
    {
        var pace = new DiscoverPace(rate, _time);
        var taken = Drain(pace, TimeSpan.FromSeconds(60));
        int most = taken.Max(t => taken.Count(u => u >= t && u < t + TimeSpan.FromSeconds(1)));
        Assert.That(most, Is.LessThanOrEqualTo(pace.MostIn(TimeSpan.FromSeconds(1))));
        Assert.That(taken.Count, Is.EqualTo((int)Math.Floor(pace.Burst + rate * 60)).Within(1), "and the rate is reached, not just bounded");
    }

    [Test]
    public void Tokens_do_not_pile_up_beyond_the_burst_while_idle()
    {
        var pace = new DiscoverPace(4, _time);
        _time.Advance(TimeSpan.FromHours(1));
        Assert.That(Enumerable.Range(0, 10).Count(i => pace.TryTake(out _)), Is.EqualTo(2));
    }

    [Test]
    public void Threads_taking_together_get_no_more_than_the_bucket_holds()
    {
        var pace = new DiscoverPace(1000, _time);
        int taken = 0;
        Parallel.For(0, 8, t => { for (int i = 0; i < 1000; i++) if (pace.TryTake(out _)) Interlocked.Increment(ref taken); });
        Assert.That(taken, Is.EqualTo(500), "the burst of half a second's worth, once");
    }

    /// <summary>The first loss holds nothing (the bucket spreads the refill); each loss after
    /// that holds twice as long up to 64 s, losses within one episode count once, and a renewal
    /// starts over.</summary>
    [Test]
    public void Repeated_losses_hold_the_refill_ever_longer_until_a_renewal()
    {
        var pace = new DiscoverPace(4, _time);
        var holds = new List<TimeSpan>();
        for (int i = 0; i < 9; i++)
        {
            // A server restart NAKs every lease at once: one episode.
            for (int lease = 0; lease < 100; lease++) pace.LeaseLost();
            var hold = pace.HoldUntil - _time.GetUtcNow();
            holds.Add(hold);
            _time.Advance(hold > DiscoverPace.FirstHold ? hold : DiscoverPace.FirstHold);
        }
        Assert.That(holds.Select(h => h.TotalSeconds), Is.EqualTo(new double[] { 0, 1, 2, 4, 8, 16, 32, 64, 64 }));

        pace.LeaseKept();
        pace.LeaseLost();
        Assert.That(pace.HoldUntil, Is.LessThanOrEqualTo(_time.GetUtcNow()), "after a renewal, a loss is a first one again");
    }

    [TestCase(0)]
    [TestCase(-1)]
    [TestCase(double.NaN)]
    [TestCase(double.PositiveInfinity)]
    public void A_pace_is_a_positive_finite_rate(double rate) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new DiscoverPace(rate, _time));
}
