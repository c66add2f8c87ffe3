using System.Net;
using System.Net.Sockets;
using SockShim.Binding;
using SockShim.Stack.Claims;
using SockShim.Stack.Pools;

namespace SockShim.Interceptor.Hooks;

/// <summary>What SockShim knows about one intercepted socket, and the socket as the binder sees
/// it. It hangs off the socket in a ConditionalWeakTable; when the socket is finalized the table
/// entry is already gone, so this object's own finalizer is what returns the address of a
/// socket nobody disposed.</summary>
internal sealed class SocketState(Socket socket, bool tuple) : IBindTarget
{
    private Lease? _lease;

    /// <summary>Created with AF_INET_TUPLE / AF_INET6_TUPLE.</summary>
    public bool Tuple { get; } = tuple;

    /// <summary>Created in a [NewAddressPerSocket] flow (mode attribute).</summary>
    public bool Scoped { get; init; }

    /// <summary>Given its own address when it bound the wildcard (wildcardBind own).</summary>
    public bool BoundAtWildcard { get; set; }

    public Lease? Lease
    {
        get => Volatile.Read(ref _lease);
        set => Volatile.Write(ref _lease, value);
    }

    // The table's value may point at its key: a ConditionalWeakTable does not keep the key alive.
    public int Descriptor => NetSockets.DescriptorOf(socket);
    public AddressFamily Family => socket.AddressFamily;
    public bool DualMode => socket.AddressFamily == AddressFamily.InterNetworkV6 && socket.DualMode;
    public string? PoolName => null;
    public int BindEndpoint(IPEndPoint own) => NetSockets.Bind(socket, own);
    public void LeaseLost(Lease lease, string reason) => LeaseLoss.Close(socket, lease, reason);

    /// <summary>Returns the address, once, whichever path gets here first.</summary>
    public void Release()
    {
        Interlocked.Exchange(ref _lease, null)?.Release();
        GC.SuppressFinalize(this);
    }

    ~SocketState() => Interlocked.Exchange(ref _lease, null)?.Release();
}
