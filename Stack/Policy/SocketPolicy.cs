using System.Net;
using System.Net.Sockets;

namespace SockShim.Stack.Policy;

/// <summary>
/// Decides, for an intercepted socket, whether it gets a new address and from which family's
/// pool. The Interceptor only reports what a socket is doing; every such decision is here.
/// </summary>
public sealed class SocketPolicy(InterceptMode mode, DestinationFilter destinations, AllocationTime allocation, WildcardBind wildcardBind = WildcardBind.Keep)
{
    public InterceptMode Mode { get; } = mode;
    public DestinationFilter Destinations { get; } = destinations;
    public AllocationTime Allocation { get; } = allocation;
    public WildcardBind WildcardBind { get; } = wildcardBind;

    /// <summary>Whether a new socket's creation scope matters: in mode attribute a socket is marked
    /// when it is created in a [NewAddressPerSocket] flow, and gets its address at connect.</summary>
    public bool RecordsCreationScope => Mode == InterceptMode.Attribute;

    /// <summary>Whether a tuple socket takes its address at creation (else at bind/connect/sendto).</summary>
    public bool TakesAddressAtCreation(bool tupleRequested) => tupleRequested && Allocation == AllocationTime.Eager;

    /// <summary>Whether an ordinary socket binding the wildcard gets its own address at bind
    /// (the port kept): only with <see cref="WildcardBind.Own"/>, in a mode that gives ordinary
    /// sockets addresses, and for TCP and UDP over IPv4/IPv6. The destination filter is applied
    /// at the first connect or send.</summary>
    public bool OwnsWildcardBind(SocketType type, AddressFamily family, bool createdInScope = false) =>
        WildcardBind == WildcardBind.Own && (Mode == InterceptMode.All || (Mode == InterceptMode.Attribute && createdInScope)) &&
        type is SocketType.Stream or SocketType.Dgram && family is AddressFamily.InterNetwork or AddressFamily.InterNetworkV6;

    /// <summary>Whether a socket that is about to connect or send unbound gets a new address.
    /// A tuple socket always does (the app asked); in mode all, a TCP/UDP socket does when its
    /// destination passes the filter, so an app's other traffic keeps the common address.</summary>
    public bool WantsAddress(bool tupleRequested, SocketType type, AddressFamily family, IPEndPoint? destination, bool createdInScope = false)
    {
        if (tupleRequested) return true;
        if (Mode == InterceptMode.Tuple || (Mode == InterceptMode.Attribute && !createdInScope)) return false;
        if (type is not (SocketType.Stream or SocketType.Dgram)) return false;
        if (family is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6)) return false;
        return destination is not null && Destinations.Matches(destination);
    }
}
