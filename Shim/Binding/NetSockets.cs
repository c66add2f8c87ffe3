using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace SockShim.Binding;

/// <summary>A .NET <see cref="Socket"/> as the binder sees it: the descriptor read from the
/// socket's field, Socket.Bind for the bind, and a socket closed when its lease is lost.</summary>
internal static class NetSockets
{
    /// <summary>The socket's handle, read from the field: Socket.Handle and Socket.SafeHandle
    /// mark the handle exposed, which also switches off multi-address connect retries.</summary>
    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_handle")]
    public static extern ref SafeSocketHandle? Handle(Socket socket);

    /// <summary>Whether code outside Socket may have the descriptor: Socket.Handle and
    /// Socket.SafeHandle hand it out, and a raw socket option (SetRawSocketOption) is
    /// configuration Socket does not track; each marks the handle. Only then can a bind have
    /// happened that Socket does not know of (a P/Invoke on the descriptor).</summary>
    public static bool HandleExposed(Socket socket) => Handle(socket) is not { } handle || ExposedOrUntracked(handle);

    [UnsafeAccessor(UnsafeAccessorKind.Method, Name = "get_ExposedHandleOrUntrackedConfiguration")]
    private static extern bool ExposedOrUntracked(SafeSocketHandle handle);

    /// <summary>Holds the socket's handle (DangerousAddRef) so that its descriptor stays this
    /// socket's while it is worked on by number: a Dispose on another thread closes it only once
    /// let go (Socket.Dispose waits for that), so no socket made meanwhile can be given the same
    /// number and be bound or asked in its place. False when the socket is closed already. The
    /// caller lets go with DangerousRelease.</summary>
    public static bool TryHold(Socket socket, out SafeSocketHandle handle)
    {
        handle = Handle(socket)!;
        if (handle is null) return false;
        bool held = false;
        try { handle.DangerousAddRef(ref held); }
        catch (ObjectDisposedException) { }
        return held;
    }

    public static int DescriptorOf(Socket socket) =>
        Handle(socket) is { IsInvalid: false, IsClosed: false } handle ? (int)handle.DangerousGetHandle() : -1;

    /// <summary>Socket.Bind. Through the base type, so a TupleSocket's own Bind is not re-entered.</summary>
    public static int Bind(Socket socket, IPEndPoint own)
    {
        SocketBinder.BindAsGiven(socket, own);
        ForgetStaleLocalEndPoint(socket);
        return 0;
    }

    // Socket caches LocalEndPoint on first read and refreshes it after connect only when it was
    // a wildcard. Ours was addr:0, so the cache would keep reporting port 0: drop it.
    public static void ForgetStaleLocalEndPoint(Socket socket) => LocalEndPointCache(socket) = null;

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_localEndPoint")]
    private static extern ref EndPoint? LocalEndPointCache(Socket socket);
}
