using System.Net;
using SockShim.Stack.Sources;

namespace SockShim.Stack.Pools;

/// <summary>One socket's hold on one address: which, from which pool, when and why.
/// Released exactly once, whichever of close, dispose, finalizer or process exit comes first.</summary>
public sealed class Lease
{
    private int _released;

    internal Lease(AddressPool pool, SourcedAddress sourced, DateTimeOffset acquiredAt, string reason)
    {
        Pool = pool;
        Sourced = sourced;
        AcquiredAt = acquiredAt;
        Reason = reason;
    }

    public IPAddress Address => Sourced.Address;
    public string PoolName => Pool.Name;
    public DateTimeOffset AcquiredAt { get; }

    /// <summary>Why it was acquired, for status and logs (for example <c>connect to 127.0.0.1:7000</c>).</summary>
    public string Reason { get; }

    internal AddressPool Pool { get; }
    internal SourcedAddress Sourced { get; }

    /// <summary>When a DHCP lease ends unless renewed; null for a static pool's address.</summary>
    public DateTimeOffset? ExpiresAt => Sourced.ExpiresAt;

    /// <summary>The DHCP server that leased the address; null for a static pool.</summary>
    public IPAddress? Server => Sourced.Server;

    /// <summary>Why the lease ended under its socket (expiry, a NAK to a renewal); null while it holds.</summary>
    public string? LostReason => _lostReason;
    private volatile string? _lostReason;
    private Action<Lease, string>? _onLost;

    /// <summary>Runs <paramref name="handler"/> when the lease is lost while held (at once if it
    /// already was). The socket's owner closes the socket there.</summary>
    public void OnLost(Action<Lease, string> handler)
    {
        Interlocked.Exchange(ref _onLost, handler);
        if (_lostReason is { } reason && Interlocked.Exchange(ref _onLost, null) is { } h) h(this, reason);
    }

    /// <summary>The server took the address back (it has left the host): the holder is told.</summary>
    internal void Lose(string reason)
    {
        if (Interlocked.Exchange(ref _released, 1) != 0) return;
        _lostReason = reason;
        Pool.Forget(this);
        if (Interlocked.Exchange(ref _onLost, null) is { } h) h(this, reason);
    }
    internal int Slot => Sourced.Slot;

    // Its links in its pool's LiveLeaseList, written only under that list's lock.
    internal Lease? PreviousLive, NextLive;
    internal bool Linked;

    /// <summary>Records which socket descriptor holds the address, for `sockshim status`.</summary>
    public void RecordSocket(long descriptor)
    {
        if (!IsReleased) Pool.RecordSocket(Slot, descriptor);
    }

    /// <summary>Why this address cannot reach <paramref name="destination"/> (a loopback address
    /// reaches only loopback), or null when it can.</summary>
    public string? CannotReach(IPAddress destination) => Pool.Provisioner.CheckDestination(destination, Pool.Name);

    /// <summary>The DiffServ code point the socket's traffic is marked with (the pool's), or null.</summary>
    public int? Dscp => Pool.Dscp;

    /// <summary>Whether a socket must set IP_FREEBIND / IPV6_FREEBIND to bind this address.</summary>
    public bool NeedsFreeBind => Pool.Provisioner.FreeBind;

    public bool IsReleased => Volatile.Read(ref _released) != 0;

    /// <summary>Gives the address back. Returns false when it was already released, so callers
    /// on several paths (Dispose, finalizer, exit) need not coordinate.</summary>
    public bool Release()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0) return false;
        Pool.Return(this);
        return true;
    }

    public override string ToString() => $"{Address} from pool {PoolName} ({Reason}, since {AcquiredAt:O})";
}
