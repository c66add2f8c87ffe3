namespace SockShim.Stack.Sources;

/// <summary>
/// A static pool's prefetch: up to K addresses claimed in the host-wide table and already on the
/// host, so a socket takes one without waiting for the kernel. Adding an address to a NIC is the
/// slow part of an acquisition (about 20 us for IPv4, 60-650 us for IPv6, where the kernel also
/// joins the address's solicited-node group and installs its local route). A released address
/// stays on the host and comes back here while there is room; otherwise it goes. One background
/// worker at a time tops the reserve up; at exit everything in it is taken off the host.
/// </summary>
internal sealed class ProvisionedReserve(int capacity, Func<int> claimAndProvision, Action<int> giveBack, Action<Action>? schedule = null)
{
    // Tests run the top-up inline; otherwise it is a thread-pool item, off the socket's thread.
    private readonly Action<Action> _schedule = schedule ?? (work => ThreadPool.UnsafeQueueUserWorkItem(_ => work(), null));
    private readonly Queue<int> _ready = new();
    private readonly object _gate = new();
    private bool _closed;
    private int _refilling;

    public int Capacity { get; } = capacity;

    /// <summary>Addresses ready on the host now.</summary>
    public int Count { get { lock (_gate) return _ready.Count; } }

    /// <summary>A ready slot, or false when none is (the caller provisions one itself). Either way
    /// the reserve is topped up behind the caller.</summary>
    public bool TryTake(out int slot)
    {
        bool taken;
        lock (_gate) taken = _ready.TryDequeue(out slot);
        Refill();
        return taken;
    }

    /// <summary>Keeps a released slot, still claimed and on the host, when there is room.</summary>
    public bool TryKeep(int slot)
    {
        lock (_gate)
        {
            if (_closed || _ready.Count >= Capacity) return false;
            _ready.Enqueue(slot);
            return true;
        }
    }

    private void Refill()
    {
        lock (_gate) if (_closed || _ready.Count >= Capacity) return;
        if (Interlocked.Exchange(ref _refilling, 1) != 0) return;
        _schedule(TopUp);
    }

    private void TopUp()
    {
        try
        {
            // Bounded: a pool that runs dry (or a provisioner that fails) stops the round.
            for (int i = 0; i < Capacity; i++)
            {
                lock (_gate) if (_closed || _ready.Count >= Capacity) return;
                int slot = claimAndProvision();
                if (slot < 0) return;
                if (!TryKeep(slot)) { giveBack(slot); return; }
            }
        }
        finally { Volatile.Write(ref _refilling, 0); }
    }

    /// <summary>Stops keeping and refilling, waits for a refill under way, and gives back every
    /// ready address (process exit, pool disposal).</summary>
    public void Drain(TimeSpan wait)
    {
        lock (_gate) _closed = true;
        var until = Environment.TickCount64 + (long)wait.TotalMilliseconds;
        while (Volatile.Read(ref _refilling) != 0 && Environment.TickCount64 < until) Thread.Sleep(1);
        while (true)
        {
            int slot;
            lock (_gate) if (!_ready.TryDequeue(out slot)) return;
            giveBack(slot);
        }
    }
}
