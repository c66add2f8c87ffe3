namespace SockShim.Stack.Pools;

/// <summary>The leases this process holds from one pool now, linked through the leases
/// themselves under one lock. A set keyed by lease (ConcurrentDictionary) cost a node and two
/// hash operations per socket, and its generic code over the lease type is compiled at run time
/// and again as it gets hot in every short-lived process; this is two pointer writes.</summary>
internal sealed class LiveLeaseList
{
    private readonly object _gate = new();
    private Lease? _head;
    private int _count;

    public int Count => Volatile.Read(ref _count);

    public void Add(Lease lease)
    {
        lock (_gate)
        {
            if (lease.Linked) return;
            lease.NextLive = _head;
            lease.PreviousLive = null;
            if (_head is not null) _head.PreviousLive = lease;
            _head = lease;
            lease.Linked = true;
            _count++;
        }
    }

    /// <summary>Unlinks the lease; nothing when it is not in the list (any more).</summary>
    public void Remove(Lease lease)
    {
        lock (_gate)
        {
            if (!lease.Linked) return;
            if (lease.PreviousLive is { } previous) previous.NextLive = lease.NextLive;
            else _head = lease.NextLive;
            if (lease.NextLive is { } next) next.PreviousLive = lease.PreviousLive;
            lease.PreviousLive = lease.NextLive = null;
            lease.Linked = false;
            _count--;
        }
    }

    /// <summary>The leases held at this moment, as a list the caller may walk while leases come and go.</summary>
    public List<Lease> Snapshot()
    {
        lock (_gate)
        {
            var leases = new List<Lease>(_count);
            for (var lease = _head; lease is not null; lease = lease.NextLive) leases.Add(lease);
            return leases;
        }
    }
}
