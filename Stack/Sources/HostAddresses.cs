using System.Net;
using Microsoft.Extensions.Logging;
using SockShim.Stack.Claims;
using SockShim.Stack.Configuration;
using SockShim.Stack.Errors;
using SockShim.Stack.Provisioning;
using SockShim.Stack.Telemetry;

namespace SockShim.Stack.Sources;

/// <summary>
/// A pool's addresses as this process holds them on the host: a slot claimed in the host-wide
/// table, and the slot's address made usable by the provisioner. Claiming and giving back are
/// written here once, in one order each: claim, then provision; take the address off the host,
/// then free the slot. The static and DHCP sources both go through it.
/// </summary>
internal sealed class HostAddresses(string pool, PoolDefinition addresses, IAddressProvisioner provisioner, LeaseTable table, long owner)
{
    private readonly ILogger _log = StackLogging.For("SockShim.Pool");

    public string Pool { get; } = pool;
    public PoolDefinition Addresses { get; } = addresses;
    public IAddressProvisioner Provisioner { get; } = provisioner;
    public LeaseTable Table { get; } = table;
    public long Owner { get; } = owner;

    /// <summary>Runs for each dead holder's slot before it is freed, while its journal record
    /// is still the dead holder's (a DHCP pool releases the lease at the server).</summary>
    public Action<int>? BeforeReclaim { get; set; }

    // An address someone else already put on the host is skipped for another, a few times.
    private const int AddressInUseRetries = 8;

    /// <summary>Claims a slot by the pool's strategy and puts its address on the host; the slot,
    /// or -1 with the reason.</summary>
    public int ClaimProvisioned(out IPAddress? address, out StackError? error)
    {
        address = null;
        // Allocated only when an address turns out to be taken: this runs for every socket.
        List<int>? skipped = null;
        try
        {
            for (int attempt = 0; ; attempt++)
            {
                int slot = Table.Claim(Addresses.Strategy, Owner);
                // Exhausted as far as live claims go: holders that died may still be in the table.
                if (slot < 0 && Table.Damage() is null && ReclaimDead() > 0) slot = Table.Claim(Addresses.Strategy, Owner);
                if (slot < 0)
                {
                    error = Damaged() ?? Exhausted(skipped);
                    return -1;
                }
                address = Addresses.AddressAt(slot);
                error = Provisioner.Provision(address, Pool);
                if (error is null) return slot;
                if (error.Code != StackErrorCode.AddressInUse || attempt >= AddressInUseRetries)
                {
                    Table.Release(slot, Owner);
                    return -1;
                }
                // Held while looking further, so this search does not pick it again.
                (skipped ??= new List<int>()).Add(slot);
            }
        }
        finally
        {
            if (skipped is not null) foreach (int slot in skipped) Table.Release(slot, Owner);
        }
    }

    // A table whose header changed under the mapping gives nothing: the pool fails closed.
    private StackError? Damaged() => Table.Damage() is { } why ? new StackError(StackErrorCode.TableDamaged, $"pool '{Pool}': {why}") : null;

    private StackError Exhausted(List<int>? skipped) => skipped is { Count: > 0 }
        ? new StackError(StackErrorCode.PoolExhausted,
            $"pool '{Pool}' has no usable address: those not held by live sockets are already present on this host, or (with the conflict probe) claimed by another station on the link " +
            $"({string.Join(", ", skipped.Take(5).Select(Addresses.AddressAt))}), and SockShim never takes over an address it did not add; free them or widen the pool")
        : new StackError(StackErrorCode.PoolExhausted,
            $"pool '{Pool}' is exhausted: all {Addresses.Count} addresses are held by live sockets on this host " +
            $"({string.Join(", ", Addresses.Ranges)}); close sockets or widen the pool");

    /// <summary>Claims the slot of one given address (a DHCP lease) and puts it on the host for
    /// <paramref name="lifetime"/> (the lease's remaining time). AddressInUse when another process
    /// of the host holds it or it is already present.</summary>
    public StackError? ClaimProvisioned(int slot, IPAddress address, TimeSpan? lifetime)
    {
        if (Damaged() is { } damaged) return damaged;
        if (!TryClaim(slot)) return new StackError(StackErrorCode.AddressInUse, $"{address} is held by another process of this host");
        return Provision(slot, address, lifetime);
    }

    /// <summary>Puts the address of a slot this process has claimed on the host for
    /// <paramref name="lifetime"/>; the slot is freed when that fails.</summary>
    public StackError? Provision(int slot, IPAddress address, TimeSpan? lifetime)
    {
        var error = Provisioner.Provision(address, Pool, lifetime);
        if (error is not null) Table.Release(slot, Owner);
        return error;
    }

    /// <summary>Journal before the wire: claims the slot of an offered address and records the
    /// lease about to be requested (server, IAID, expiry not yet known) before the REQUEST goes
    /// out, so a crash from then on leaves a record gc or the next process releases at the
    /// server. False when the table is damaged or another live process of the host holds it.</summary>
    public bool ClaimForRequest(int slot, uint server, uint iaid)
    {
        if (Damaged() is not null || !TryClaim(slot)) return false;
        Table.SetDhcp(slot, Owner, server, iaid, LeaseTable.ExpiryNotYetKnown);
        return true;
    }

    // A slot whose holder died is taken after the dead are reclaimed.
    private bool TryClaim(int slot) => Table.TryClaimSlot(slot, Owner) || (ReclaimDead() > 0 && Table.TryClaimSlot(slot, Owner));

    /// <summary>Takes the address off the host, then frees its slot, only when the slot is still
    /// this process's: it is marked as being released first, so no one can claim it while its
    /// address leaves, and an address another holder now has is never removed.</summary>
    public void GiveBack(int slot, IPAddress address)
    {
        if (!Table.BeginRelease(slot, Owner))
        {
            _log.LogWarning("pool {Pool}: {Address} is no longer this process's in the table; left on the host for its holder", Pool, address);
            return;
        }
        Provisioner.Deprovision(address);
        Table.EndRelease(slot);
    }

    /// <summary>Frees the slots of holders that died, and takes their addresses off the host
    /// while each slot is still this process's alone, so a new claimer's address is never removed.</summary>
    public int ReclaimDead()
    {
        var slots = Table.ReclaimDead(slot =>
        {
            BeforeReclaim?.Invoke(slot);
            Provisioner.DeprovisionLeftover(Addresses.AddressAt(slot));
        });
        foreach (int slot in slots) _log.LogInformation("pool {Pool}: reclaimed {Address}, whose holder is gone", Pool, Addresses.AddressAt(slot));
        return slots.Count;
    }
}
