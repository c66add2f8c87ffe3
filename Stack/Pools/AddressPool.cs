using System.Collections.Concurrent;
using SockShim.Stack.Leases;
using SockShim.Stack.Provisioning;
using Microsoft.Extensions.Logging;
using SockShim.Stack.Telemetry;

namespace SockShim.Stack.Pools;

/// <summary>An address held in a pool's host-wide table, and the process that holds it.</summary>
public sealed record AddressHolder(string Pool, System.Net.IPAddress Address, int Pid, bool Alive, DateTimeOffset Since);

/// <summary>A static pool at work: its addresses, its host-wide lease table and its provisioner.</summary>
public sealed class AddressPool : IDisposable
{
    private readonly LeaseTable _table;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<Lease, byte> _live = new();
    private readonly long _owner = ProcessIdentity.Current;

    private readonly ILogger _log = StackLogging.For("SockShim.Pool");

    private readonly Dhcp.DhcpSource? _dhcp;
    private readonly Helper.HelperSource? _helper;
    private readonly ProvisionedReserve? _reserve;

    /// <summary>A pool whose addresses come from `sockshim serve`: it claims and provisions them.</summary>
    internal AddressPool(PoolDefinition definition, IAddressProvisioner provisioner, LeaseTable privateTable, TimeProvider time, Helper.HelperSource helper)
    {
        Definition = definition;
        Provisioner = provisioner;
        _table = privateTable;
        _time = time;
        _helper = helper;
    }

    internal AddressPool(PoolDefinition definition, IAddressProvisioner provisioner, LeaseTable table, TimeProvider time,
        Func<AddressPool, Dhcp.DhcpSource>? dhcp = null, int prefetch = 0)
    {
        Definition = definition;
        Provisioner = provisioner;
        _table = table;
        _time = time;
        _dhcp = dhcp?.Invoke(this);
        if (_dhcp is null && prefetch > 0) _reserve = new ProvisionedReserve(prefetch, ClaimReady, GiveBack);
        // Whatever a crashed process left is free again before this one starts taking addresses.
        ReclaimDead();
    }

    public PoolDefinition Definition { get; }

    /// <summary>The DiffServ code point its sockets are marked with, or null.</summary>
    public int? Dscp { get; internal set; }
    public IAddressProvisioner Provisioner { get; }
    public string Name => Definition.Name;
    internal LeaseTable Table => _table;
    internal long Owner => _owner;

    /// <summary>"dhcp" when addresses are leased from a DHCP server, else "static".</summary>
    public string Source => _helper is not null ? "helper" : _dhcp is null ? "static" : "dhcp";

    /// <summary>Addresses prefetched and waiting for sockets: DHCP leases, or a static pool's
    /// reserve of addresses already on the host.</summary>
    public int ReadyLeases => _dhcp?.ReadyCount ?? _reserve?.Count ?? 0;
    /// <summary>Leases this process holds from the pool now.</summary>
    public IReadOnlyCollection<Lease> LiveLeases => (IReadOnlyCollection<Lease>)_live.Keys;

    /// <summary>Frees the slots of holders that died, and takes their addresses off the host.</summary>
    public int ReclaimDead()
    {
        var slots = _table.ReclaimDead(_dhcp is null ? null : _dhcp.ReleaseOrphan);
        foreach (int slot in slots)
        {
            Provisioner.Deprovision(Definition.AddressAt(slot), Definition);
            _log.LogInformation("pool {Pool}: reclaimed {Address}, whose holder is gone", Name, Definition.AddressAt(slot));
        }
        return slots.Count;
    }

    // An address someone else already put on the host is skipped for another, a few times.
    private const int AddressInUseRetries = 8;

    public bool TryAcquire(string reason, out Lease lease, out StackError? error)
    {
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        bool ok = TryAcquireCore(reason, out lease, out error);
        var tags = Tags();
        if (ok)
        {
            // Guarded: this runs for every socket, and a disabled log call still builds its arguments.
            if (_log.IsEnabled(LogLevel.Debug)) _log.LogDebug("pool {Pool}: acquired {Address} ({Reason})", Name, lease.Address, reason);
            StackMetrics.Acquisitions.Add(1, tags);
            StackMetrics.LiveLeases.Add(1, tags);
            StackMetrics.AcquireDuration.Record(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMicroseconds, tags);
        }
        else
        {
            _log.LogWarning("pool {Pool}: no address for a socket ({Reason}): {Error}", Name, reason, error!.Message);
            StackMetrics.Failures.Add(1, [.. tags, new("reason", error.Code.ToString())]);
        }
        return ok;
    }

    private KeyValuePair<string, object?>[]? _tags;
    private KeyValuePair<string, object?>[] Tags() => _tags ??= [new("pool", Name), new("provisioner", Provisioner.Name)];

    private bool TryAcquireCore(string reason, out Lease lease, out StackError? error)
    {
        lease = null!;
        if (_dhcp is not null) return TryAcquireLeased(reason, out lease, out error);
        if (_helper is not null) return TryAcquireFromHelper(reason, out lease, out error);
        int slot;
        System.Net.IPAddress? address = null;
        if (_reserve is not null && _reserve.TryTake(out slot)) _table.SetSocket(slot, -1);
        else
        {
            slot = ClaimProvisioned(out address, out error);
            if (slot < 0) return false;
        }
        error = null;
        lease = new Lease(this, slot, address ?? Definition.AddressAt(slot), _time.GetUtcNow(), reason);
        _live[lease] = 0;
        return true;
    }

    /// <summary>Claims a slot in the host-wide table and puts its address on the host; the slot,
    /// or -1 with the reason.</summary>
    private int ClaimProvisioned(out System.Net.IPAddress? address, out StackError? error)
    {
        address = null;
        // Allocated only when an address turns out to be taken: this runs for every socket.
        List<int>? skipped = null;
        try
        {
            for (int attempt = 0; ; attempt++)
            {
                int slot = _table.Claim(Definition.Strategy, _owner);
                // Exhausted as far as live claims go: holders that died may still be in the table.
                if (slot < 0 && ReclaimDead() > 0) slot = _table.Claim(Definition.Strategy, _owner);
                if (slot < 0)
                {
                    error = skipped is { Count: > 0 }
                        ? new StackError(StackErrorCode.PoolExhausted,
                            $"pool '{Name}' has no usable address: those not held by live sockets are already present on this host " +
                            $"({string.Join(", ", skipped.Take(5).Select(Definition.AddressAt))}), and SockShim never takes over an address it did not add; remove them or widen the pool")
                        : new StackError(StackErrorCode.PoolExhausted,
                            $"pool '{Name}' is exhausted: all {Definition.Count} addresses are held by live sockets on this host " +
                            $"({string.Join(", ", Definition.Ranges)}); close sockets or widen the pool");
                    return -1;
                }

                address = Definition.AddressAt(slot);
                error = Provisioner.Provision(address, Definition);
                if (error is null) return slot;
                if (error.Code != StackErrorCode.AddressInUse || attempt >= AddressInUseRetries)
                {
                    _table.Release(slot, _owner);
                    return -1;
                }
                // Held while looking further, so this search does not pick it again.
                (skipped ??= new List<int>()).Add(slot);
            }
        }
        finally
        {
            if (skipped is not null) foreach (int slot in skipped) _table.Release(slot, _owner);
        }
    }

    // A slot for the reserve, marked so `status` shows it waiting.
    private int ClaimReady()
    {
        int slot = ClaimProvisioned(out _, out _);
        if (slot >= 0) _table.SetSocket(slot, LeaseTable.ReadySocket);
        return slot;
    }

    // A reserve slot goes back: off the host, then out of the table.
    private void GiveBack(int slot)
    {
        Provisioner.Deprovision(Definition.AddressAt(slot), Definition);
        _table.Release(slot, _owner);
    }

    private bool TryAcquireLeased(string reason, out Lease lease, out StackError? error)
    {
        lease = null!;
        if (!_dhcp!.TryTake(out var held, out error)) return false;
        lease = new Lease(this, held.Slot, held.Address, _time.GetUtcNow(), reason) { Dhcp = held };
        _live[lease] = 0;
        held.Lease = lease;
        if (held.LostReason is { } lost) lease.Lose(lost);
        return true;
    }

    private bool TryAcquireFromHelper(string reason, out Lease lease, out StackError? error)
    {
        lease = null!;
        if (!_helper!.TryTake(out var address, out error)) return false;
        int slot = Definition.IndexOf(address);
        if (slot < 0 || !_table.TryClaimSlot(slot, _owner))
        {
            _helper.Returned(address);
            error = new StackError(StackErrorCode.ProvisionFailed, $"pool '{Name}': the helper gave {address}, which is outside the pool or already held here");
            return false;
        }
        lease = new Lease(this, slot, address, _time.GetUtcNow(), reason);
        _live[lease] = 0;
        return true;
    }

    /// <summary>A DHCP lease ended under its socket: off the host and out of the table, with no
    /// DHCPRELEASE (the server already considers it gone).</summary>
    internal void Forfeit(Lease lease)
    {
        _live.TryRemove(lease, out _);
        StackMetrics.LiveLeases.Add(-1, Tags());
        if (Volatile.Read(ref _disposed) != 0) return;
        Provisioner.Deprovision(lease.Address, Definition);
        _table.Release(lease.Slot, _owner);
    }

    internal void Return(Lease lease)
    {
        _live.TryRemove(lease, out _);
        var tags = Tags();
        if (_log.IsEnabled(LogLevel.Debug)) _log.LogDebug("pool {Pool}: released {Address}", Name, lease.Address);
        StackMetrics.Releases.Add(1, tags);
        StackMetrics.LiveLeases.Add(-1, tags);
        // A finalizer may run after the stack was disposed; the table is unmapped by then and
        // the slot was already freed by ReleaseAll.
        if (Volatile.Read(ref _disposed) != 0) return;
        // Prefetch: the address stays on the host and in this process's hands for the next socket.
        if (_reserve is not null && _reserve.TryKeep(lease.Slot))
        {
            _table.SetSocket(lease.Slot, LeaseTable.ReadySocket);
            return;
        }
        _table.Release(lease.Slot, _owner);
        if (_helper is not null)
        {
            _helper.Returned(lease.Address);
            return;
        }
        Provisioner.Deprovision(lease.Address, Definition);
        if (lease.Dhcp is { } held) _dhcp!.Returned(held);
    }

    /// <summary>Every address of the pool held on this host now, by any process.</summary>
    public IEnumerable<AddressHolder> Holders() =>
        _table.HeldSlots().Select(h => new AddressHolder(Name, Definition.AddressAt(h.Slot), ProcessIdentity.PidOf(h.Owner),
            ProcessIdentity.IsAlive(h.Owner), DateTimeOffset.FromUnixTimeMilliseconds(_table.AcquiredAtUnixMs(h.Slot))));

    /// <summary>Releases every lease this process still holds (process exit).</summary>
    public int ReleaseAll()
    {
        // Closed first, so the leases released below leave the host instead of waiting in it.
        _reserve?.Drain(TimeSpan.FromSeconds(5));
        int n = 0;
        foreach (var lease in _live.Keys)
            if (lease.Release()) n++;
        // Every DHCPRELEASE goes out before the process does.
        _dhcp?.ReleaseReady(TimeSpan.FromSeconds(5));
        return n;
    }

    private int _disposed;

    public void Dispose()
    {
        ReleaseAll();
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _dhcp?.Dispose();
        _helper?.Dispose();
        _table.Dispose();
    }
}
