using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using SockShim.Stack;
using SockShim.Stack.Policy;

namespace SockShim.Interceptor.Hooks;

/// <summary>
/// The handlers behind the woven slots: each turns what a Socket is doing into a question to the
/// Stack's <see cref="SocketPolicy"/> and pool, and binds what it hands out. No policy here.
/// </summary>
internal static class SocketHooks
{
    private static Lazy<AddressStack> s_stack = null!;
    private static readonly ConditionalWeakTable<Socket, SocketState> s_states = new();

    // Set while a hook binds a socket itself, so the Bind it calls is not taken for the app's.
    [ThreadStatic] private static bool t_binding;

    public static void Use(Lazy<AddressStack> stack) => s_stack = stack;

    private static AddressStack Stack => s_stack.Value;

    public static AddressFamily MapFamily(AddressFamily family) => TupleFamilies.ToRealFamily(family);

    public static void Created(Socket socket, AddressFamily requested)
    {
        if (!TupleFamilies.IsTupleFamily(requested))
        {
            if (Stack.Policy.RecordsCreationScope && AddressScope.IsActive) s_states.AddOrUpdate(socket, new SocketState(tuple: false) { Scoped = true });
            return;
        }
        var state = new SocketState(tuple: true);
        s_states.AddOrUpdate(socket, state);
        if (!Stack.Policy.TakesAddressAtCreation(tupleRequested: true)) return;
        try
        {
            Acquire(socket, state, socket.AddressFamily, "socket() eager");
            Bind(socket, state, 0, deferPort: true);
        }
        catch
        {
            // The constructor fails: close the OS socket now rather than at finalization.
            socket.Dispose();
            throw;
        }
    }

    public static EndPoint Binding(Socket socket, EndPoint endpoint)
    {
        if (t_binding || !s_states.TryGetValue(socket, out var state) || !state.Tuple) return endpoint;
        if (endpoint is IPEndPoint ip && OwnAddressBinding.IsWildcard(ip.Address))
        {
            if (state.Lease is null) Acquire(socket, state, socket.AddressFamily, $"bind port {ip.Port}");
            return OwnAddressBinding.Prepare(socket, state.Lease!, ip.Port, deferPort: true);
        }
        // A specific address is the app's choice: leave it, and give back what was taken eagerly.
        state.Release();
        return endpoint;
    }

    public static void Connecting(Socket socket, EndPoint? remote) => BeforeTraffic(socket, remote as IPEndPoint, "connect");

    public static void SendingTo(Socket socket, object? target) => BeforeTraffic(socket, Destination(target), "sendto");

    public static void Disposed(Socket socket)
    {
        if (s_states.TryGetValue(socket, out var state))
        {
            state.Release();
            s_states.Remove(socket);
        }
    }

    /// <summary>Before the first connect or datagram of an unbound socket: bind its own address
    /// if the policy wants one for it.</summary>
    private static void BeforeTraffic(Socket socket, IPEndPoint? destination, string operation)
    {
        if (t_binding || socket.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6)) return;
        s_states.TryGetValue(socket, out var state);
        bool tuple = state?.Tuple == true;
        if (!Stack.Policy.WantsAddress(tuple, socket.SocketType, socket.AddressFamily, destination, createdInScope: state?.Scoped == true)) return;
        // Bound already: by the app, by an earlier hook, or by the kernel on an earlier send.
        if (IsBoundInKernel(socket)) return;

        bool dualMode = socket.AddressFamily == AddressFamily.InterNetworkV6 && socket.DualMode;
        var family = SocketPolicy.PoolFamilyFor(socket.AddressFamily, dualMode, destination);
        if (state is null)
        {
            // Mode all: a family with no pool keeps the common address.
            if (Stack.FindPool(family, null, out _) is null) return;
            state = s_states.GetValue(socket, _ => new SocketState(tuple: false));
        }
        if (state.Lease is null) Acquire(socket, state, family, operation);

        var lease = state.Lease!;
        if (destination is not null && lease.CannotReach(destination.Address) is { } why)
        {
            if (tuple) throw ShimErrors.Unreachable(why);
            state.Release();
            return;
        }
        Bind(socket, state, 0, deferPort: false);
    }

    private static void Acquire(Socket socket, SocketState state, AddressFamily family, string reason)
    {
        if (!Stack.TryAcquire(family, null, reason, out var lease, out var error))
            throw ShimErrors.ToException(error!);
        state.Lease = lease;
        LeaseLoss.CloseOnLoss(socket, lease);
    }

    /// <summary>A closed socket is used: if SockShim closed it because its lease ended, say so.</summary>
    public static void UsedAfterClose(Socket socket) => LeaseLoss.ThrowIfLost(socket);

    private static void Bind(Socket socket, SocketState state, int port, bool deferPort)
    {
        t_binding = true;
        try { socket.Bind(OwnAddressBinding.Prepare(socket, state.Lease!, port, deferPort)); }
        finally { t_binding = false; }
    }

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

    /// <summary>Asks the kernel (getsockname) whether the OS socket is bound. Socket.IsBound is
    /// not enough: after a failed attempt of a multi-address connect .NET swaps in a fresh OS
    /// socket. The handle is read from the field, not Socket.Handle, which would mark it exposed
    /// and switch that retry logic off.</summary>
    private static unsafe bool IsBoundInKernel(Socket socket)
    {
        var handle = OwnAddressBinding.Handle(socket);
        if (handle is null || handle.IsInvalid || handle.IsClosed) return false;
        Span<byte> buffer = stackalloc byte[128];
        uint length = (uint)buffer.Length;
        fixed (byte* p = buffer)
        {
            if (Tmds.Linux.LibC.getsockname((int)handle.DangerousGetHandle(), (Tmds.Linux.sockaddr*)p, (Tmds.Linux.socklen_t*)&length) != 0) return false;
        }
        // sockaddr_in / sockaddr_in6: family (2), port (2), then the address.
        if (buffer[2] != 0 || buffer[3] != 0) return true;
        var address = BitConverter.ToUInt16(buffer) == 2 ? buffer.Slice(4, 4) : buffer.Slice(8, 16);
        return address.IndexOfAnyExcept((byte)0) >= 0;
    }

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_socketAddress")]
    private static extern ref SocketAddress? EventArgsSocketAddress(SocketAsyncEventArgs e);
}
