namespace SockShim.Stack.Addressing;

/// <summary>How a pool picks the next free address.</summary>
public enum AllocationStrategy
{
    /// <summary>The lowest free address: predictable, easy to read in captures.</summary>
    Sequential,
    /// <summary>A random free address: spreads sockets over the whole pool.</summary>
    Random,
    /// <summary>The free address released longest ago, so a new socket neither meets an old
    /// one's TIME_WAIT nor inherits its identity at a peer. The default.</summary>
    LeastRecentlyReleased,
    /// <summary>IPv6: only the pool's addresses that share their low 24 bits (those of its first
    /// address), picked least recently released. They all have one solicited-node multicast
    /// group (RFC 4291 2.7.1), which the kernel joins once instead of joining and leaving a group
    /// per address; each group left under MLDv2 leaves a record that every later add walks.
    /// Needs a prefix of /104 or wider; the addresses are 2^24 apart, and alike to a peer.</summary>
    OneSolicitedNodeGroup,
}
