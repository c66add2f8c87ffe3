namespace SockShim.Stack.Dhcp;

/// <summary>
/// How fast one interface's DHCP client may open transactions on the link: a token bucket for
/// every DISCOVER (a new acquisition, a restart, a retransmission) and every retransmitted
/// REQUEST of an acquisition, and a pool-level hold on refilling the prefetch after leases are
/// lost again and again. No I/O; the time is the caller's (<see cref="TimeProvider"/>), so it is
/// tested on a fake clock. Thread-safe: a socket's thread takes a token for the DISCOVER it
/// sends itself, the client's thread for the rest.
/// </summary>
/// <remarks>
/// <para>Why a pace at all: switches with DHCP snooping count the DHCP packets each untrusted
/// port receives per second and shut the port down (err-disable) past a limit. Cisco Catalyst
/// (<c>ip dhcp snooping limit rate</c>, 1-2048 messages/s, off by default; "If the rate limit is
/// exceeded, the interface is error-disabled") lets the administrator choose; switches built on
/// Broadcom FASTPATH (Netgear ProSAFE GSM7328S, Enterasys SecureStack B2, Fortinet 548B: "The
/// factory default is 15pps", burst interval 1 s, "the port will be shutdown") and Dell
/// N-series (<c>ip dhcp snooping limit rate R burst interval S</c>) shut the port at 15 a second
/// out of the box, and Siemens' hiD switches recommend 15 pps for untrusted ports. HPE Comware
/// (<c>dhcp-snooping rate-limit</c>, 64-512 kbit/s: at least 22 packets of 360 bytes a second)
/// drops the excess instead. So 15 DHCP packets a second, measured over one second, is the
/// limit a host must expect; that one port down takes every lease of the host with it.</para>
/// <para>Every packet of an acquisition takes a token: the DISCOVER and the REQUEST answering
/// its OFFER. (Counting only the DISCOVERs bounds the REQUESTs one to one on average, but not per
/// second: a server slow to answer sends its OFFERs in a bunch, and the REQUESTs went out in one;
/// measured 18 client packets in a second at a bound of 12, with the machine loaded.) The
/// default, <see cref="DefaultRate"/> = 8 a second with a burst of half a second's worth (4):
/// packets in any one second at most burst + rate = 12, whatever the server does, so 3 of the 15
/// stay for renewals (unpaced here: delaying them could lose the lease; T1 is fuzzed and at least
/// 2 s per lease, see <see cref="DhcpTiming"/>) and releases; 4 leases a second.</para>
/// <para>Retransmissions take tokens too: the switch counts them like any other packet, and a
/// server that does not answer (the case in which they happen) is no reason to send faster.</para>
/// </remarks>
internal sealed class DiscoverPace
{
    /// <summary>Transactions a second unless configured (see the remarks).</summary>
    public const double DefaultRate = 8;

    /// <summary>The first pool-level hold after losses repeat, and its cap: RFC 2131 §4.1's
    /// retransmission backoff, 4 s doubling to 64 s, shortened at the start (1 s) as
    /// <see cref="DhcpTiming.RestartDelay"/> is, so a pool that lost leases once is refilled
    /// quickly.</summary>
    public static readonly TimeSpan FirstHold = TimeSpan.FromSeconds(1), MaxHold = TimeSpan.FromSeconds(64);

    private readonly Lock _gate = new();
    private readonly TimeProvider _time;
    private double _tokens;
    private DateTimeOffset _filledAt;
    // Pool-level backoff: losses that come within one episode count once.
    private int _episodes;
    private TimeSpan _hold;
    private DateTimeOffset _holdUntil = DateTimeOffset.MinValue, _episodeEnds = DateTimeOffset.MinValue;

    public DiscoverPace(double rate, TimeProvider time)
    {
        if (!(rate > 0) || double.IsInfinity(rate)) throw new ArgumentOutOfRangeException(nameof(rate), rate, "a pace is a positive number of packets a second");
        Rate = rate;
        // Half a second's worth, at least one: a socket alone never waits, a burst stays small.
        Burst = Math.Max(1, Math.Floor(rate / 2));
        _time = time;
        _tokens = Burst;
        _filledAt = time.GetUtcNow();
    }

    /// <summary>Tokens a second.</summary>
    public double Rate { get; }

    /// <summary>Tokens the bucket holds when full: transactions that may go out back to back.</summary>
    public double Burst { get; }

    /// <summary>The most transactions sent in any <paramref name="span"/>: the bucket's bound,
    /// which the tests hold the wire to.</summary>
    public double MostIn(TimeSpan span) => Burst + Rate * span.TotalSeconds;

    /// <summary>Takes a token if there is one; else false, and <paramref name="retryAt"/> says when there will be.</summary>
    public bool TryTake(out DateTimeOffset retryAt)
    {
        lock (_gate)
        {
            var now = _time.GetUtcNow();
            Fill(now);
            if (_tokens >= 1)
            {
                _tokens -= 1;
                retryAt = now;
                return true;
            }
            retryAt = now + TimeSpan.FromSeconds((1 - _tokens) / Rate);
            return false;
        }
    }

    private void Fill(DateTimeOffset now)
    {
        if (now > _filledAt) _tokens = Math.Min(Burst, _tokens + Rate * (now - _filledAt).TotalSeconds);
        _filledAt = now;
    }

    /// <summary>Until when the prefetch refill waits after lost leases (MinValue: it need not).</summary>
    public DateTimeOffset HoldUntil
    {
        get { lock (_gate) return _holdUntil; }
    }

    /// <summary>A held lease was lost (NAK, expiry, too short a renewal). The losses of one
    /// episode (within <see cref="FirstHold"/> of its first, or while its hold lasts: a server
    /// that restarts NAKs every lease at once) count once. The first episode holds nothing: the
    /// bucket alone spreads the refill. Each further one before a lease is renewed again holds
    /// the refill twice as long as the last, from <see cref="FirstHold"/> to
    /// <see cref="MaxHold"/>: a server that takes back what it leases is not asked ever faster.</summary>
    public void LeaseLost()
    {
        lock (_gate)
        {
            var now = _time.GetUtcNow();
            if (now < _episodeEnds) return;
            _hold = _episodes == 0 ? TimeSpan.Zero : _hold == TimeSpan.Zero ? FirstHold : TimeSpan.FromTicks(Math.Min(_hold.Ticks * 2, MaxHold.Ticks));
            _episodes++;
            _holdUntil = now + _hold;
            _episodeEnds = now + (_hold > FirstHold ? _hold : FirstHold);
        }
    }

    /// <summary>A lease was renewed: the server keeps what it leases, so the backoff starts over.</summary>
    public void LeaseKept()
    {
        lock (_gate)
        {
            _episodes = 0;
            _hold = TimeSpan.Zero;
            _holdUntil = _episodeEnds = DateTimeOffset.MinValue;
        }
    }
}
