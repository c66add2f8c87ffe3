using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using SockShim.Binding;
using SockShim.Interceptor.Contract;
using SockShim.Stack.Claims;
using SockShim.Stack.Pools;

namespace SockShim.Interceptor.Hooks;

/// <summary>What SockShim knows about one intercepted socket, and the socket as the binder sees
/// it. It hangs off the socket in the field the weaver adds to Socket, so it lives exactly as
/// long as its socket: the Disposed hook, which follows Dispose, Close and Socket's own finalizer
/// alike, takes it off and returns the address.</summary>
internal sealed class SocketState(Socket socket, bool tuple) : IBindTarget
{
    private Lease? _lease;

    /// <summary>The woven Socket's state field (<see cref="HookContract.StateField"/>).</summary>
    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = HookContract.StateField)]
    private static extern ref object? Field(Socket socket);

    // What the field holds once the socket is disposed: no state can be hung off it any more.
    private static readonly object s_disposed = new();

    /// <summary>The socket's state, or null while SockShim has had no reason to keep one (or the
    /// socket is disposed).</summary>
    public static SocketState? Of(Socket socket) => Volatile.Read(ref Field(socket)) as SocketState;

    /// <summary>Hangs <paramref name="state"/> off a socket just made (its constructor's hook).</summary>
    public static void Attach(Socket socket, SocketState state) => Volatile.Write(ref Field(socket), state);

    /// <summary>The socket's state, made now if it has none; null once the socket is disposed.
    /// Two threads using one socket at once (datagrams sent from both) get the same one.</summary>
    public static SocketState? AttachNew(Socket socket)
    {
        var fresh = new SocketState(socket, tuple: false);
        return Interlocked.CompareExchange(ref Field(socket), fresh, null) is { } prior ? prior as SocketState : fresh;
    }

    /// <summary>Takes the state off a socket being disposed (null when it had none), and marks
    /// the socket so that none is hung off it later.</summary>
    public static SocketState? Detach(Socket socket) => Interlocked.Exchange(ref Field(socket), s_disposed) as SocketState;

    /// <summary>Taken off its socket by <see cref="Detach"/>: whatever address it holds now is
    /// the one a thread acquired while another disposed the socket, and nobody else returns it.</summary>
    public bool Detached => ReferenceEquals(Volatile.Read(ref Field(socket)), s_disposed);

    /// <summary>Created with AF_INET_TUPLE / AF_INET6_TUPLE.</summary>
    public bool Tuple { get; } = tuple;

    /// <summary>Created in a [NewAddressPerSocket] flow (mode attribute).</summary>
    public bool Scoped { get; init; }

    /// <summary>Given its own address when it bound the wildcard (wildcardBind own).</summary>
    public bool BoundAtWildcard { get; set; }

    // Set with a full fence: a thread that sets it and then reads Detached, and one that detaches
    // and then releases, cannot both miss each other.
    public Lease? Lease
    {
        get => Volatile.Read(ref _lease);
        set => Interlocked.Exchange(ref _lease, value);
    }

    public int Descriptor => NetSockets.DescriptorOf(socket);
    public AddressFamily Family => socket.AddressFamily;
    public bool DualMode => socket.AddressFamily == AddressFamily.InterNetworkV6 && socket.DualMode;
    public string? PoolName => null;
    public int BindEndpoint(IPEndPoint own) => NetSockets.Bind(socket, own);

    /// <summary>Right before the connect or datagram Socket is making: bound on the descriptor,
    /// as <see cref="SocketBinder.BindDescriptor"/> binds one, not through Socket.Bind. The Socket
    /// then records its endpoint from that connect or send exactly as it does for an unbound
    /// socket, and keeps the options of one: Socket.Bind would add SO_REUSEADDR (a system call
    /// more, and an option the app never set) and serialise the endpoint a second time.</summary>
    public int BindBeforeTraffic(IPEndPoint own)
    {
        var handle = NetSockets.Handle(socket);
        int errno = SocketBinder.BindDescriptor(Descriptor, own, socket.AddressFamily == AddressFamily.InterNetworkV6 ? SockAddr.AF_INET6 : SockAddr.AF_INET);
        if (errno == 0) _boundHandle = handle;
        return errno;
    }

    // The handle whose descriptor BindBeforeTraffic bound: Socket does not know of that bind
    // until its connect or send succeeds (IsBound stays false), and one that failed may be retried.
    private SafeSocketHandle? _boundHandle;

    /// <summary>Whether these hooks bound the socket's present descriptor.</summary>
    public bool BoundHere => _boundHandle is { } bound && ReferenceEquals(bound, NetSockets.Handle(socket));

    public void LeaseLost(Lease lease, string reason) => LeaseLoss.Close(socket, lease, reason);

    /// <summary>Returns the address, once, whichever path gets here first.</summary>
    public void Release() => Interlocked.Exchange(ref _lease, null)?.Release();
}
