using System.Net;
using SockShim.Stack.Claims;
using SockShim.Stack.Configuration;
using SockShim.Stack.Errors;

namespace SockShim.Stack.Sources;

/// <summary>A static pool's addresses: claimed from its ranges and provisioned per socket, or
/// taken from a reserve already on the host (prefetch).</summary>
internal sealed class StaticSource : IAddressSource
{
    private readonly HostAddresses _host;
    private readonly ProvisionedReserve? _reserve;

    public StaticSource(HostAddresses host, int prefetch)
    {
        _host = host;
        if (prefetch > 0) _reserve = new ProvisionedReserve(prefetch, ClaimReady, slot => _host.GiveBack(slot, _host.Addresses.AddressAt(slot)));
    }

    public SourceKind Kind => SourceKind.Static;
    public LeaseTable Table => _host.Table;
    public int ReadyCount => _reserve?.Count ?? 0;

    public bool TryTake(out SourcedAddress taken, out StackError? error)
    {
        error = null;
        if (_reserve is not null && _reserve.TryTake(out int ready))
        {
            Table.SetSocket(ready, -1);
            taken = new SourcedAddress(ready, _host.Addresses.AddressAt(ready));
            return true;
        }
        int slot = _host.ClaimProvisioned(out IPAddress? address, out error);
        taken = slot < 0 ? null! : new SourcedAddress(slot, address!);
        return slot >= 0;
    }

    // A slot for the reserve, marked so `status` shows it waiting.
    private int ClaimReady()
    {
        int slot = _host.ClaimProvisioned(out _, out _);
        if (slot >= 0) Table.SetSocket(slot, LeaseTable.ReadySocket);
        return slot;
    }

    public void Return(SourcedAddress taken)
    {
        // Prefetch: the address stays on the host and in this process's hands for the next socket.
        if (_reserve is not null && _reserve.TryKeep(taken.Slot))
        {
            Table.SetSocket(taken.Slot, LeaseTable.ReadySocket);
            return;
        }
        _host.GiveBack(taken.Slot, taken.Address);
    }

    public int ReclaimDead() => _host.ReclaimDead();

    public void ReleaseReady() => _reserve?.Drain(TimeSpan.FromSeconds(5));

    public void Dispose() => Table.Dispose();
}
