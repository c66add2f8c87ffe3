using System.Net;
using System.Net.Sockets;
using SockShim.Stack;
using SockShim.Stack.Claims;
using SockShim.Stack.Errors;
using SockShim.Stack.Pools;
using Tmds.Linux;

namespace SockShim.Binding;

/// <summary>
/// One socket as a front end sees it: <see cref="TupleSocket"/>, a woven Socket under the
/// launcher, or a Berkeley descriptor. The binder works through this and nothing else, so the
/// three front ends bind, mark and watch their sockets exactly the same way.
/// </summary>
internal interface IBindTarget
{
    /// <summary>The kernel descriptor, or -1 once closed.</summary>
    int Descriptor { get; }
    /// <summary>The socket's real family (AF_INET or AF_INET6, never a tuple family).</summary>
    AddressFamily Family { get; }
    /// <summary>An IPv6 socket that also carries IPv4 traffic (IPV6_V6ONLY off).</summary>
    bool DualMode { get; }
    /// <summary>The pool asked for by name; null: the first pool of the family.</summary>
    string? PoolName { get; }
    Lease? Lease { get; set; }
    /// <summary>Binds the socket's own endpoint in the front end's calling convention: 0, or an
    /// errno (the .NET front ends throw instead, as Socket.Bind does).</summary>
    int BindEndpoint(IPEndPoint own);
    /// <summary>Binds the socket's own endpoint right before its first connect or datagram, which
    /// the front end is making: by default as <see cref="BindEndpoint"/> does.</summary>
    int BindBeforeTraffic(IPEndPoint own) => SocketBinder.BindMarked(this, own);
    /// <summary>The lease ended under the socket (DHCP expiry, a NAK): the address has left the host.</summary>
    void LeaseLost(Lease lease, string reason);
}

/// <summary>
/// The one place a socket gets its own address, for every front end: decide the pool's family,
/// acquire, check the destination is reachable from it, bind (IP_BIND_ADDRESS_NO_PORT,
/// FREEBIND, DSCP) and wire up lease loss. Failures are returned as a <see cref="BindFailure"/>
/// (errno and message); each front end reports it in its own convention.
/// </summary>
internal static class SocketBinder
{
    // Set while the binder binds a woven Socket itself, so the Bind hook it passes through is not
    // taken for the app's own Bind.
    [ThreadStatic] private static bool t_binding;

    /// <summary>True on the thread while the binder is inside a Bind it started.</summary>
    public static bool IsBinding => t_binding;

    /// <summary>The pool family for a socket: a dual-mode IPv6 socket going to an IPv4 (or
    /// mapped) destination needs an IPv4 address, bound as ::ffff:a.b.c.d; so does one whose
    /// destination is not known yet when no pool serves IPv6.</summary>
    public static AddressFamily PoolFamily(AddressStack stack, AddressFamily socketFamily, bool dualMode, IPEndPoint? destination, string? pool)
    {
        if (socketFamily != AddressFamily.InterNetworkV6 || !dualMode) return socketFamily;
        if (destination is not null)
            return destination.AddressFamily == AddressFamily.InterNetwork || destination.Address.IsIPv4MappedToIPv6 ? AddressFamily.InterNetwork : socketFamily;
        return pool is null && !stack.HasPool(AddressFamily.InterNetworkV6) ? AddressFamily.InterNetwork : socketFamily;
    }

    /// <summary>Takes a lease for <paramref name="target"/> and wires its loss to the target.</summary>
    public static BindFailure? Acquire(AddressStack stack, IBindTarget target, IPEndPoint? destination, string reason)
    {
        var family = PoolFamily(stack, target.Family, target.DualMode, destination, target.PoolName);
        if (!stack.TryAcquire(family, target.PoolName, reason, out var lease, out var error)) return BindFailure.From(error!);
        target.Lease = lease;
        // A static pool's address never ends under its socket; a DHCP lease may. Held weakly: a
        // lease must not keep an abandoned socket from its finalizer.
        if (lease.ExpiresAt is not null)
        {
            var weak = new WeakReference<IBindTarget>(target);
            lease.OnLost((l, why) => { if (weak.TryGetTarget(out var t)) t.LeaseLost(l, why); });
        }
        return null;
    }

    /// <summary>Takes a lease for a socket about to make its first connect or datagram, unless it
    /// holds one: the first step of <see cref="BeforeTraffic"/>, for a front end that must take it
    /// apart from the rest (a DHCP pool may wait for its server here, and a lease lost at once
    /// closes the socket on this thread).</summary>
    public static BindFailure? AcquireFor(AddressStack stack, IBindTarget target, IPEndPoint? destination, string operation) =>
        target.Lease is null ? Acquire(stack, target, destination, Reason(operation, destination)) : null;

    /// <summary>Why the socket's own address cannot reach <paramref name="destination"/> (a
    /// loopback address reaches only loopback), or null.</summary>
    public static BindFailure? Reach(Lease lease, IPEndPoint? destination) =>
        destination is not null && lease.CannotReach(destination.Address) is { } why ? new BindFailure(LibC.ENETUNREACH, why) : null;

    /// <summary>
    /// Sets the socket up for its own address and returns the endpoint to bind: an IPv4 address
    /// on an IPv6 (dual-mode) socket is bound IPv4-mapped. With <paramref name="deferPort"/> and
    /// port 0 the port is left to connect() (IP_BIND_ADDRESS_NO_PORT), which picks it against the
    /// full 4-tuple, so the address keeps its whole ephemeral range and a later bind may still
    /// choose a port. Right before a connect there is nothing to defer to: the kernel picks the
    /// port at bind, which costs less than the 4-tuple search (about 8 us per connection
    /// measured here), and the address is the socket's own, so its range is not shared.
    /// </summary>
    public static BindFailure? Prepare(IBindTarget target, int port, bool deferPort, out IPEndPoint own)
    {
        own = null!;
        // Given back under it: the socket was closed on another thread.
        if (target.Lease is not { } lease) return Closed;
        var address = lease.Address;
        if (target.Family == AddressFamily.InterNetworkV6 && address.AddressFamily == AddressFamily.InterNetwork) address = address.MapToIPv6();
        own = new IPEndPoint(address, port);
        int fd = target.Descriptor;
        if (fd < 0) return Closed;
        lease.RecordSocket(fd);
        bool v6 = target.Family == AddressFamily.InterNetworkV6;
        if (port == 0 && deferPort && !SocketOptions.DeferPort(fd)) return OptionFailed("IP_BIND_ADDRESS_NO_PORT");
        if (lease.NeedsFreeBind && !SocketOptions.FreeBind(fd, v6)) return OptionFailed(v6 ? "IPV6_FREEBIND" : "IP_FREEBIND");
        if (lease.Dscp is { } dscp && !SocketOptions.Mark(fd, v6, dscp)) return OptionFailed(v6 ? "IP_TOS/IPV6_TCLASS" : "IP_TOS");
        return null;
    }

    /// <summary><see cref="Prepare"/>, then the bind itself through the target's convention.</summary>
    public static BindFailure? BindOwn(IBindTarget target, int port, bool deferPort)
    {
        if (Prepare(target, port, deferPort, out var own) is { } failed) return failed;
        return Bound(BindMarked(target, own), own);
    }

    /// <summary>The target's <see cref="IBindTarget.BindEndpoint"/>, with the thread marked as
    /// inside the binder's own bind (<see cref="IsBinding"/>).</summary>
    internal static int BindMarked(IBindTarget target, IPEndPoint own)
    {
        t_binding = true;
        try { return target.BindEndpoint(own); }
        finally { t_binding = false; }
    }

    private static BindFailure? Bound(int errno, IPEndPoint own) => errno == 0 ? null : new BindFailure(errno, $"binding {own} failed");

    /// <summary>
    /// Before the first connect or datagram of a socket that should have its own address: acquire
    /// it (unless held), check the destination, bind. <paramref name="required"/>: the app asked
    /// for a new address (a tuple socket), so an unreachable destination is its error; otherwise
    /// (mode all) the socket gives the address back and keeps the host's common one.
    /// </summary>
    public static BindFailure? BeforeTraffic(AddressStack stack, IBindTarget target, IPEndPoint? destination, string operation, bool required)
    {
        if (AcquireFor(stack, target, destination, operation) is { } failed) return failed;
        if (target.Lease is not { } lease) return Closed;
        if (Reach(lease, destination) is { } unreachable)
        {
            if (required) return unreachable;
            target.Lease = null;
            lease.Release();
            return null;
        }
        if (Prepare(target, 0, deferPort: false, out var own) is { } notPrepared) return notPrepared;
        // Bound the target's way for this moment (a woven Socket: on its descriptor, so no Bind
        // hook is passed through and none needs telling apart).
        return Bound(target.BindBeforeTraffic(own), own);
    }

    // The last reason built on this thread: a client connecting to one server again and again
    // (a load generator, a pool of connections) shares one string among its leases instead of
    // holding a copy per socket (72 bytes each, at a million connections 72 MB) and formatting it each time.
    [ThreadStatic] private static (string Operation, IPEndPoint Destination, string Reason)? t_lastReason;

    /// <summary>Why a socket takes its address, as status and logs show it: "connect to 192.0.2.1:80".</summary>
    private static string Reason(string operation, IPEndPoint? destination)
    {
        if (destination is null) return operation;
        if (t_lastReason is { } last && ReferenceEquals(last.Operation, operation) && last.Destination.Equals(destination)) return last.Reason;
        string reason = $"{operation} to {destination}";
        // A copy: the app may change the endpoint (or its address) it passed after the call.
        var a = destination.Address;
        var copy = a.AddressFamily == AddressFamily.InterNetworkV6 ? new IPAddress(a.GetAddressBytes(), a.ScopeId) : new IPAddress(a.GetAddressBytes());
        t_lastReason = (operation, new IPEndPoint(copy, destination.Port), reason);
        return reason;
    }

    /// <summary>The app's own bind of an address it chose, passed to the kernel unchanged.</summary>
    public static unsafe int BindAsGiven(int fd, sockaddr* address, socklen_t length) => LibC.bind(fd, address, length);

    /// <summary>The app's own bind of an address it chose (Socket.Bind, not a TupleSocket's).</summary>
    public static void BindAsGiven(Socket socket, EndPoint endpoint) => socket.Bind(endpoint);

    /// <summary>Binds a descriptor to its own endpoint (the Berkeley convention): 0 or an errno.</summary>
    public static unsafe int BindDescriptor(int fd, IPEndPoint own, int family)
    {
        Span<byte> buffer = stackalloc byte[SockAddr.SizeIn6];
        int length = SockAddr.Write(buffer, own, family);
        fixed (byte* p = buffer) return LibC.bind(fd, (sockaddr*)p, (uint)length) == 0 ? 0 : LibC.errno;
    }

    /// <summary>Whether the kernel has the descriptor bound (getsockname: a port or a specific
    /// address). Socket.IsBound is not enough: after a failed attempt of a multi-address connect
    /// .NET swaps in a fresh OS socket.</summary>
    public static unsafe bool IsBound(int fd)
    {
        if (fd < 0) return false;
        Span<byte> buffer = stackalloc byte[SockAddr.SizeIn6];
        uint length = (uint)buffer.Length;
        int saved = LibC.errno;
        IPEndPoint? local = null;
        fixed (byte* p = buffer)
        {
            if (LibC.getsockname(fd, (sockaddr*)p, (socklen_t*)&length) == 0) local = SockAddr.Read(p, (int)length);
        }
        System.Runtime.InteropServices.Marshal.SetLastPInvokeError(saved);
        return local is not null && (local.Port != 0 || !IsWildcard(local.Address));
    }

    public static bool IsWildcard(IPAddress a) =>
        a.Equals(IPAddress.Any) || a.Equals(IPAddress.IPv6Any) || (a.IsIPv4MappedToIPv6 && a.MapToIPv4().Equals(IPAddress.Any));

    private static readonly BindFailure Closed = new(LibC.EBADF, "the socket is closed");

    private static BindFailure OptionFailed(string option)
    {
        int errno = LibC.errno;
        return new BindFailure(errno == 0 ? LibC.EINVAL : errno, $"setsockopt({option}) failed, errno {errno}");
    }
}
