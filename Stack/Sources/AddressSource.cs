using System.Net;
using SockShim.Stack.Claims;
using SockShim.Stack.Configuration;
using SockShim.Stack.Errors;

namespace SockShim.Stack.Sources;

/// <summary>An address a source gave one socket: its slot in the pool's table and, for a DHCP
/// lease, the server and the lease's end.</summary>
internal class SourcedAddress(int slot, IPAddress address)
{
    public int Slot { get; } = slot;
    public IPAddress Address { get; } = address;
    public virtual DateTimeOffset? ExpiresAt => null;
    public virtual IPAddress? Server => null;

    /// <summary>Why the address ended under its socket (set before <see cref="Lost"/> runs).</summary>
    public volatile string? LostReason;

    /// <summary>Set by the holder: runs, after the address left the host, when the source loses it.</summary>
    public Action<string>? Lost;

    internal void Lose(string reason)
    {
        LostReason = reason;
        Volatile.Read(ref Lost)?.Invoke(reason);
    }
}

/// <summary>
/// Where a pool's addresses come from (static ranges, a DHCP server, `sockshim serve`). Each
/// source owns its whole sequence for an address: claim, provision, return, lose.
/// </summary>
internal interface IAddressSource : IDisposable
{
    SourceKind Kind { get; }

    /// <summary>The table the pool's holders are recorded in (the helper's is private).</summary>
    LeaseTable Table { get; }

    /// <summary>Addresses prefetched and waiting for sockets.</summary>
    int ReadyCount { get; }

    bool TryTake(out SourcedAddress taken, out StackError? error);

    /// <summary>The socket is done with the address.</summary>
    void Return(SourcedAddress taken);

    /// <summary>Frees what holders that died left; how many.</summary>
    int ReclaimDead();

    /// <summary>Process exit: gives back what waits ready and sends what must reach a server.</summary>
    void ReleaseReady();
}
