namespace SockShim.Stack.Policy;

/// <summary>Which sockets of an intercepted app get a new address.</summary>
public enum InterceptMode
{
    /// <summary>Only sockets created with AF_INET_TUPLE / AF_INET6_TUPLE.</summary>
    Tuple,
    /// <summary>Every new IPv4/IPv6 TCP or UDP client socket whose destination passes the filter.</summary>
    All,
    /// <summary>Every TCP/UDP client socket created in a flow marked [NewAddressPerSocket]
    /// (and whose destination passes the filter); sockets created elsewhere keep the common address.</summary>
    Attribute,
}
