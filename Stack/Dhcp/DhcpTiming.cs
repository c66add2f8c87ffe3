namespace SockShim.Stack.Dhcp;

/// <summary>Retransmission, acquisition, floor and pacing settings of the lease machine, and the
/// rules that turn a server's lease times into the client's timers. RFC 2131 suggests a first
/// retransmission after 4 s and renewal retries no closer than 60 s; a socket waiting on its
/// address and leases of a few seconds (tests, short-lived pools) need tighter values, so they
/// are settings. What a server sends is bounded here, so that no server value (a lease of 0 s,
/// T1 = 0) makes the client send without pause.</summary>
internal sealed record DhcpTiming
{
    public TimeSpan FirstRetransmit { get; init; } = TimeSpan.FromSeconds(1);
    public TimeSpan MaxRetransmit { get; init; } = TimeSpan.FromSeconds(16);
    /// <summary>How long a socket waits for an address before its creation fails.</summary>
    public TimeSpan AcquireTimeout { get; init; } = TimeSpan.FromSeconds(15);
    public TimeSpan MinRenewRetransmit { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>REQUESTs without an answer before DISCOVER starts over.</summary>
    public int RequestAttempts { get; init; } = 4;
    /// <summary>Option 51 in DISCOVER and REQUEST; null lets the server choose.</summary>
    public uint? RequestedLeaseSeconds { get; init; }

    /// <summary>The shortest lease taken. RFC 2131 sets no minimum, and Kea hands out leases of
    /// 1 s if told to, but a lease is only usable if it can be renewed (§4.4.5): a REQUEST at T1
    /// (no earlier than <see cref="MinRenewal"/>, 2 s), and before expiry at least one more try,
    /// in REBINDING, a retransmission gap (<see cref="MinRenewRetransmit"/>, 1 s) later, with a
    /// second apart for the answer: 2 + 1 + 1 = 4 s. A shorter lease would be lost at its first
    /// dropped packet, and one of 0 s (already over when it arrives) would bind and be lost on
    /// the next turn, again and again. Such an ACK is not bound: acquisition fails with the
    /// reason, a renewal loses the lease. Treating it as 4 s instead would keep an address the
    /// server already considers free. The tests' Kea leases of 6-20 s stay above it.</summary>
    public TimeSpan MinLease { get; init; } = TimeSpan.FromSeconds(4);

    /// <summary>The earliest T1. RFC 2131 §4.4.5 defaults T1 to half the lease and does not
    /// bound what a server sends; with T1 = 0 every renewal ACK would schedule the next renewal
    /// at once. A T1 under 2 s (or not below T2, or a T2 not below the lease) is treated as
    /// absent, so the RFC defaults (0.5 and 0.875 of the lease) apply; the fuzz never takes T1
    /// under it either. So a lease renews at most every 2 s: a REQUEST and its ACK, at most one
    /// packet a second per lease. Kea's renew-timer of 2 s in the tests is kept.</summary>
    public TimeSpan MinRenewal { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>RFC 2131 §4.4.5: "T1 and T2 SHOULD be chosen with some random 'fuzz' around a
    /// fixed value, to avoid synchronization of client reacquisition". Both are multiplied by
    /// one draw from [1 - Fuzz, 1]: only earlier, since renewing early is always safe while a
    /// later T2 could pass the lease's end, and one factor for both keeps T1 &lt; T2. A tenth
    /// spreads 500 leases taken together with 1 h leases over 3 min of renewals (about 3 a
    /// second) instead of one burst.</summary>
    public double Fuzz { get; init; } = 0.1;

    /// <summary>First pause before acquisition starts over after a NAK to the REQUEST; each
    /// further restart of the same machine doubles it (RFC 2131 §4.1's "randomized exponential
    /// backoff", drawn from [3/4, 1] of the step) up to <see cref="MaxRestartDelay"/>. RFC 2131
    /// §4.1 starts its retransmissions at 4 s; a socket waiting on its address (15 s by
    /// default) cannot spend that on its first restart, so 1 s.</summary>
    public TimeSpan RestartDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The cap of the restart backoff: RFC 2131 §4.1's 64 s maximum between
    /// retransmissions.</summary>
    public TimeSpan MaxRestartDelay { get; init; } = TimeSpan.FromSeconds(64);

    /// <summary>RFC 2131 §3.1 step 5: after a DHCPDECLINE "The client SHOULD wait a minimum of
    /// ten seconds before restarting the configuration process to avoid excessive network
    /// traffic in case of looping." The backoff applies when it is longer.</summary>
    public TimeSpan DeclineDelay { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Why a lease of this many seconds is not taken, or null when it is long enough.</summary>
    public string? TooShort(uint leaseSeconds) => leaseSeconds < MinLease.TotalSeconds
        ? $"{leaseSeconds} s, shorter than the {MinLease.TotalSeconds:0.#} s a lease needs to be renewed before it ends (RFC 2131 §4.4.5)"
        : null;

    /// <summary>T1 and T2 in seconds from the lease's start, for a lease of at least
    /// <see cref="MinLease"/>: the server's values where they are usable, else the RFC 2131
    /// §4.4.5 defaults, then fuzzed; always <see cref="MinRenewal"/> ≤ T1 ≤ T2 &lt; lease.</summary>
    public (double Renew, double Rebind) Timers(uint leaseSeconds, uint? renewSeconds, uint? rebindSeconds, Random random)
    {
        double lease = leaseSeconds, min = MinRenewal.TotalSeconds;
        double t1 = renewSeconds ?? lease * 0.5, t2 = rebindSeconds ?? lease * 0.875;
        if (!(min <= t1 && t1 < t2 && t2 < lease))
            (t1, t2) = (lease * 0.5, lease * 0.875);
        double factor = 1 - Fuzz * random.NextDouble();
        t2 *= factor;
        t1 = Math.Min(Math.Max(t1 * factor, min), t2);
        return (t1, t2);
    }

    /// <summary>The pause before the <paramref name="restarts"/>-th restart (1 for the first)
    /// of one machine's acquisition.</summary>
    public TimeSpan RestartAfter(int restarts, bool declined, Random random)
    {
        double step = RestartDelay.TotalMilliseconds * Math.Pow(2, Math.Max(0, restarts - 1));
        double ms = Math.Min(step, MaxRestartDelay.TotalMilliseconds) * (1 - 0.25 * random.NextDouble());
        if (declined) ms = Math.Max(ms, DeclineDelay.TotalMilliseconds);
        return TimeSpan.FromMilliseconds(ms);
    }
}
