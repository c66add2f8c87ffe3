using Microsoft.Extensions.Logging;
using SockShim.Stack.Claims;
using SockShim.Stack.Configuration;
using SockShim.Stack.Errors;
using SockShim.Stack.Provisioning;
using SockShim.Stack.Sources;
using SockShim.Stack.Telemetry;

namespace SockShim.Stack.Pools;

/// <summary>
/// A pool as sockets see it: its name, addresses, the rules its sockets bind by (FREEBIND,
/// DSCP, reachability), its metrics and the leases this process holds. Where the addresses come
/// from, and how they are claimed and given back, is its source's business.
/// </summary>
public sealed class AddressPool : IDisposable
{
    private readonly IAddressSource _source;
    private readonly TimeProvider _time;
    private readonly LiveLeaseList _live = new();
    private readonly ILogger _log = StackLogging.For("SockShim.Pool");
    private int _disposed;

    internal AddressPool(PoolDefinition definition, IAddressProvisioner provisioner, IAddressSource source, int? dscp, PoolDescription description, TimeProvider time)
    {
        Definition = definition;
        Provisioner = provisioner;
        _source = source;
        Dscp = dscp;
        Description = description;
        _time = time;
    }

    public PoolDefinition Definition { get; }
    public string Name => Definition.Name;

    /// <summary>The DiffServ code point its sockets are marked with, or null.</summary>
    public int? Dscp { get; }
    internal IAddressProvisioner Provisioner { get; }

    /// <summary>Where its addresses come from.</summary>
    public SourceKind Source => _source.Kind;

    /// <summary>The pool as its table's description says it (what the helper tells its clients).</summary>
    internal PoolDescription Description { get; }

    internal LeaseTable Table => _source.Table;

    /// <summary>Addresses prefetched and waiting for sockets: DHCP leases, or a static pool's
    /// reserve of addresses already on the host.</summary>
    public int ReadyLeases => _source.ReadyCount;

    /// <summary>Leases this process holds from the pool now.</summary>
    public IReadOnlyCollection<Lease> LiveLeases => _live.Snapshot();

    /// <summary>Frees what holders that died left, and takes their addresses off the host.</summary>
    public int ReclaimDead() => _source.ReclaimDead();

    public bool TryAcquire(string reason, out Lease lease, out StackError? error)
    {
        // The clock is read only for a listener of the duration histogram: two reads per socket otherwise.
        long started = StackMetrics.AcquireDuration.Enabled ? System.Diagnostics.Stopwatch.GetTimestamp() : 0;
        var tags = Tags();
        lease = null!;
        if (!_source.TryTake(out var taken, out error))
        {
            _log.LogWarning("pool {Pool}: no address for a socket ({Reason}): {Error}", Name, reason, error!.Message);
            StackMetrics.Failures.Add(1, [.. tags, new("reason", error.Code.ToString())]);
            return false;
        }
        lease = new Lease(this, taken, _time.GetUtcNow(), reason);
        _live.Add(lease);
        // Only a leased address can be lost under its socket (a static one never is: no delegate
        // on this path), possibly before this socket is told (a DHCP NAK right now).
        if (taken.ExpiresAt is not null)
        {
            var attached = lease;
            Volatile.Write(ref taken.Lost, why => attached.Lose(why));
            if (taken.LostReason is { } lost) lease.Lose(lost);
        }
        // Guarded: this runs for every socket, and a disabled log call still builds its arguments.
        if (_log.IsEnabled(LogLevel.Debug)) _log.LogDebug("pool {Pool}: acquired {Address} ({Reason})", Name, lease.Address, reason);
        StackMetrics.Acquisitions.Add(1, tags);
        StackMetrics.LiveLeases.Add(1, tags);
        if (started != 0) StackMetrics.AcquireDuration.Record(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMicroseconds, tags);
        return true;
    }

    private KeyValuePair<string, object?>[]? _tags;
    private KeyValuePair<string, object?>[] Tags() => _tags ??= [new("pool", Name), new("provisioner", Provisioner.Name)];

    internal void RecordSocket(int slot, long descriptor)
    {
        if (Volatile.Read(ref _disposed) == 0) Table.SetSocket(slot, descriptor);
    }

    /// <summary>The lease is no longer live here: given back, or lost under its socket (the
    /// source has already taken the address off the host).</summary>
    internal void Forget(Lease lease)
    {
        _live.Remove(lease);
        StackMetrics.LiveLeases.Add(-1, Tags());
    }

    internal void Return(Lease lease)
    {
        Forget(lease);
        if (_log.IsEnabled(LogLevel.Debug)) _log.LogDebug("pool {Pool}: released {Address}", Name, lease.Address);
        StackMetrics.Releases.Add(1, Tags());
        // A finalizer may run after the stack was disposed; the table is unmapped by then and
        // the slot was already freed by ReleaseAll.
        if (Volatile.Read(ref _disposed) != 0) return;
        _source.Return(lease.Sourced);
    }

    /// <summary>Releases every lease this process still holds (process exit).</summary>
    public int ReleaseAll()
    {
        if (Volatile.Read(ref _disposed) != 0) return 0;
        int n = 0;
        foreach (var lease in _live.Snapshot())
            if (lease.Release()) n++;
        // What waits ready leaves the host, and every DHCPRELEASE goes out before the process does.
        _source.ReleaseReady();
        return n;
    }

    public void Dispose()
    {
        ReleaseAll();
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _source.Dispose();
    }
}
