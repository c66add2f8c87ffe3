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
}
