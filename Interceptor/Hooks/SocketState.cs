using SockShim.Stack.Leases;

namespace SockShim.Interceptor.Hooks;

/// <summary>What SockShim knows about one intercepted socket. It hangs off the socket in a
/// ConditionalWeakTable; when the socket is finalized the table entry is already gone, so this
/// object's own finalizer is what returns the address of a socket nobody disposed.</summary>
internal sealed class SocketState(bool tuple)
{
    private Lease? _lease;

    /// <summary>Created with AF_INET_TUPLE / AF_INET6_TUPLE.</summary>
    public bool Tuple { get; } = tuple;

    /// <summary>Created in a [NewAddressPerSocket] flow (mode attribute).</summary>
    public bool Scoped { get; init; }

    public Lease? Lease
    {
        get => Volatile.Read(ref _lease);
        set => Volatile.Write(ref _lease, value);
    }

    /// <summary>Returns the address, once, whichever path gets here first.</summary>
    public void Release()
    {
        Interlocked.Exchange(ref _lease, null)?.Release();
        GC.SuppressFinalize(this);
    }

    ~SocketState() => Interlocked.Exchange(ref _lease, null)?.Release();
}
