using SockShim.Stack.Addressing;
using SockShim.Stack.Configuration;
using SockShim.Stack.Policy;
using SockShim.Stack.Pools;

namespace SockShim;

/// <summary>
/// The method's fourth socket() argument: whether a socket gets the host's common address
/// (<see cref="Common"/>, the default) or a new one of its own, and from which pool and when.
/// </summary>
public readonly record struct SocketTuple
{
    /// <summary>True when the socket is to get a new address of its own.</summary>
    public bool NewAddress { get; init; }

    /// <summary>The configured pool to take it from; null: the first pool of the socket's family.</summary>
    public string? Pool { get; init; }

    /// <summary>Overrides the configured allocation time for this socket; null: as configured.</summary>
    public AllocationTime? Allocation { get; init; }

    /// <summary>The host's common address, as a plain socket has (the default value).</summary>
    public static SocketTuple Common => default;

    /// <summary>A new address from the default pool of the socket's family.</summary>
    public static SocketTuple New => new() { NewAddress = true };

    /// <summary>A new address from the named pool.</summary>
    public static SocketTuple FromPool(string pool) => new() { NewAddress = true, Pool = pool };

    public override string ToString() =>
        !NewAddress ? "common address" : $"new address from {(Pool is null ? "the default pool" : $"pool '{Pool}'")}" + (Allocation is { } a ? $", {a.ToString().ToLowerInvariant()}" : "");
}
