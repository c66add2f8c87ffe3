using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using SockShim.Binding;
using SockShim.Interceptor.Contract;
using SockShim.Stack;
using SockShim.Stack.Errors;

namespace SockShim.Interceptor.Hooks;

/// <summary>
/// The handlers behind the woven slots: each turns what a Socket is doing into a question to the
/// Stack's <see cref="Stack.Policy.SocketPolicy"/> and pool, and binds what it hands out. No policy here.
/// </summary>
internal sealed class SocketHooks : ISocketHooks
{
    private static Lazy<AddressStack> s_stack = null!;
    // Once built: every hook reads it, and a field read is all that costs (Lazy's Value is a call
    // into shared generic code, recompiled as it gets hot in every short-lived process).
    private static AddressStack? s_built;

    public static void Use(Lazy<AddressStack> stack) => s_stack = stack;

    private static AddressStack Stack => Volatile.Read(ref s_built) ?? Build();

    // A failed build is the Lazy's: each later use throws the same exception again.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static AddressStack Build()
    {
        var stack = s_stack.Value;
        Volatile.Write(ref s_built, stack);
        return stack;
    }

    public AddressFamily MapFamily(AddressFamily family) => TupleFamilies.ToRealFamily(family);

    public void Created(Socket socket, AddressFamily requested)
    {
        if (!TupleFamilies.IsTupleFamily(requested))
        {
            if (Stack.Policy.RecordsCreationScope && AddressScope.IsActive) SocketState.Attach(socket, new SocketState(socket, tuple: false) { Scoped = true });
            return;
        }
        var state = new SocketState(socket, tuple: true);
        SocketState.Attach(socket, state);
        if (!Stack.Policy.TakesAddressAtCreation(tupleRequested: true)) return;
        var failed = SocketBinder.Acquire(Stack, state, null, "socket() eager") ?? SocketBinder.BindOwn(state, 0, deferPort: true);
        if (failed is not null)
        {
            // The constructor fails: close the OS socket now rather than at finalization.
            socket.Dispose();
            throw ShimErrors.ToException(failed.Value);
        }
    }

    public EndPoint Binding(Socket socket, EndPoint endpoint)
    {
        if (SocketBinder.IsBinding) return endpoint;
        var state = SocketState.Of(socket);
        if (state?.Tuple != true) return OrdinaryBinding(socket, state, endpoint);
        if (endpoint is IPEndPoint ip && SocketBinder.IsWildcard(ip.Address))
        {
            // The woven Bind binds what this returns.
            if (state.Lease is null && SocketBinder.Acquire(Stack, state, null, $"bind port {ip.Port}") is { } notAcquired)
                throw ShimErrors.ToException(notAcquired);
            return PrepareHeld(socket, state, ip.Port, deferPort: true, out var own) ? own : endpoint;
        }
        // A specific address is the app's choice: leave it, and give back what was taken eagerly.
        state.Release();
        return endpoint;
    }

    /// <summary>An ordinary socket binding the wildcard (<c>new UdpClient(0)</c>, an RTP stack on
    /// 0.0.0.0:port): with wildcardBind own it gets its own address now, with the port asked
    /// for; otherwise (the default, as a listener binds the same way) the bind is the app's.</summary>
    private static EndPoint OrdinaryBinding(Socket socket, SocketState? state, EndPoint endpoint)
    {
        if (endpoint is not IPEndPoint ip || !SocketBinder.IsWildcard(ip.Address) ||
            !Stack.Policy.OwnsWildcardBind(socket.SocketType, socket.AddressFamily, createdInScope: state?.Scoped == true)) return endpoint;
        bool dualMode = socket.AddressFamily == AddressFamily.InterNetworkV6 && socket.DualMode;
        if (!Stack.HasPool(SocketBinder.PoolFamily(Stack, socket.AddressFamily, dualMode, null, null))) return endpoint;
        // Null: disposed meanwhile, on another thread.
        state ??= SocketState.AttachNew(socket);
        if (state is null) return endpoint;
        if (state.Lease is null && SocketBinder.Acquire(Stack, state, null, $"bind port {ip.Port}") is { } notAcquired)
            throw ShimErrors.ToException(notAcquired);
        if (!PrepareHeld(socket, state, ip.Port, deferPort: false, out var own)) return endpoint;
        state.BoundAtWildcard = true;
        return own;
    }

    /// <summary><see cref="SocketBinder.Prepare"/> (socket options set by descriptor number) with
    /// the socket held open, so a Dispose on another thread cannot hand its number to a new socket
    /// meanwhile. False when the socket was disposed first: its address goes back, and the Bind
    /// binds what the app gave, so Socket throws ObjectDisposedException as without SockShim.</summary>
    private static bool PrepareHeld(Socket socket, SocketState state, int port, bool deferPort, out IPEndPoint own)
    {
        own = null!;
        BindFailure? failed = null;
        bool held = NetSockets.TryHold(socket, out var handle);
        try { if (held) failed = SocketBinder.Prepare(state, port, deferPort, out own); }
        finally
        {
            if (held) handle.DangerousRelease();
            // Disposed on another thread, before or meanwhile: nobody else gives that address back.
            if (!held || state.Detached) state.Release();
        }
        if (failed is not null) throw ShimErrors.ToException(failed.Value);
        return held;
    }

    public void Connecting(Socket socket, EndPoint remote) => BeforeTraffic(socket, remote as IPEndPoint, "connect");

    public void SendingTo(Socket socket, object target) => BeforeTraffic(socket, Destination(target), "sendto");

    // Also reached from Socket's finalizer (Dispose(false)): the address of a socket nobody disposed goes back then.
    public void Disposed(Socket socket) => SocketState.Detach(socket)?.Release();

    /// <summary>Before the first connect or datagram of an unbound socket: bind its own address
    /// if the policy wants one for it.</summary>
    private static void BeforeTraffic(Socket socket, IPEndPoint? destination, string operation)
    {
        if (SocketBinder.IsBinding || socket.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6)) return;
        // Closed: Socket itself says so (ObjectDisposedException); an address taken now would
        // hang off a socket whose Disposed hook has run, and never go back.
        if (NetSockets.DescriptorOf(socket) < 0) return;
        var state = SocketState.Of(socket);
        bool tuple = state?.Tuple == true;
        if (!Stack.Policy.WantsAddress(tuple, socket.SocketType, socket.AddressFamily, destination, createdInScope: state?.Scoped == true)) return;
        if (state is null)
        {
            if (Bound(socket, null, destination)) return;
            // Mode all: a family with no pool keeps the common address.
            bool dualMode = socket.AddressFamily == AddressFamily.InterNetworkV6 && socket.DualMode;
            if (!Stack.HasPool(SocketBinder.PoolFamily(Stack, socket.AddressFamily, dualMode, destination, null))) return;
            // Null: disposed meanwhile, on another thread.
            state = SocketState.AttachNew(socket);
            if (state is null) return;
        }
        // One thread at a time per socket (two sending its first datagrams at once): each would
        // take an address, and the second bind would fail.
        lock (state)
        {
            if (Bound(socket, state, destination)) return;
            // Taken with the socket not held open: a DHCP pool may wait for its server here (a
            // Dispose on another thread must not wait for that), and a lease lost at once closes
            // the socket on this very thread (its Dispose waits for every hold: it would wait for ever).
            var failed = SocketBinder.AcquireFor(Stack, state, destination, operation);
            if (failed is null)
            {
                // Held open while its descriptor is set up and bound by number.
                if (NetSockets.TryHold(socket, out var handle))
                {
                    try { failed = SocketBinder.BeforeTraffic(Stack, state, destination, operation, required: tuple); }
                    finally { handle.DangerousRelease(); }
                }
                // Closed meanwhile: Socket says so (ObjectDisposedException, or the lost lease's
                // own error through UsedAfterClose).
                else state.Release();
            }
            // Disposed on another thread meanwhile: its Disposed hook may have found no address
            // to give back yet.
            if (state.Detached) state.Release();
            if (failed is not null) throw ShimErrors.ToException(failed.Value);
        }
    }

    /// <summary>Bound already: by the app, by an earlier hook, or by the kernel on an earlier
    /// send. A socket given its own address at a wildcard bind cannot be bound again: what can
    /// still be said about its destination is whether its address reaches it.</summary>
    private static bool Bound(Socket socket, SocketState? state, IPEndPoint? destination)
    {
        if (!MayBeBound(socket, state)) return false;
        // Asked with the socket held open, so the number asked about is still its own. Closed:
        // nothing to bind, and Socket says so.
        if (!NetSockets.TryHold(socket, out var handle)) return true;
        bool bound;
        try { bound = SocketBinder.IsBound(NetSockets.DescriptorOf(socket)); }
        finally { handle.DangerousRelease(); }
        if (!bound) return false;
        if (state is { BoundAtWildcard: true, Lease: { } own } && SocketBinder.Reach(own, destination) is { } unreachable)
            throw ShimErrors.ToException(unreachable);
        return true;
    }

    /// <summary>Whether the kernel must be asked (getsockname) if the socket is bound. Not for a
    /// stream socket Socket never bound (IsBound: its own Bind, or the handle it was made from)
    /// when no code outside Socket can have bound it (its handle never handed out, no raw option
    /// set) and these hooks did not bind its present descriptor: then it is unbound, and every
    /// connection of a load generator saves the system call. A datagram socket is always asked:
    /// the kernel binds one at its first send even when that send fails, which Socket never
    /// records.</summary>
    private static bool MayBeBound(Socket socket, SocketState? state) =>
        socket.SocketType != SocketType.Stream || socket.IsBound || NetSockets.HandleExposed(socket) || state?.BoundHere == true;

    /// <summary>A closed socket is used: if SockShim closed it because its lease ended, say so.</summary>
    public void UsedAfterClose(Socket socket) => LeaseLoss.ThrowIfLost(socket);

    private static IPEndPoint? Destination(object? target) => target switch
    {
        IPEndPoint ip => ip,
        SocketAddress sa => FromSocketAddress(sa),
        SocketAsyncEventArgs e => e.RemoteEndPoint as IPEndPoint ?? (EventArgsSocketAddress(e) is { } sa ? FromSocketAddress(sa) : null),
        _ => null,
    };

    private static IPEndPoint? FromSocketAddress(SocketAddress sa) => sa.Family switch
    {
        AddressFamily.InterNetwork => (IPEndPoint)new IPEndPoint(IPAddress.Any, 0).Create(sa),
        AddressFamily.InterNetworkV6 => (IPEndPoint)new IPEndPoint(IPAddress.IPv6Any, 0).Create(sa),
        _ => null,
    };

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_socketAddress")]
    private static extern ref SocketAddress? EventArgsSocketAddress(SocketAsyncEventArgs e);
}
