namespace SockShim.Interceptor.Weaving;

/// <summary>
/// The names shared by the weaver (which creates them inside System.Net.Sockets) and the
/// startup hook (which fills them by reflection). The slots are static delegate fields of a
/// class added to the woven assembly, so the woven code references nothing outside the
/// framework: with no delegate set it behaves exactly like the stock assembly.
/// </summary>
public static class HookSlots
{
    public const string TypeNamespace = "System.Net.Sockets";
    public const string TypeName = "SockShimHooks";
    public const string FullTypeName = TypeNamespace + "." + TypeName;

    /// <summary><c>Func&lt;AddressFamily, AddressFamily&gt;</c>: AF_INET_TUPLE to the real family.</summary>
    public const string MapFamily = "MapFamily";
    /// <summary><c>Action&lt;Socket, AddressFamily&gt;</c>: a new socket and the family asked for.</summary>
    public const string Created = "Created";
    /// <summary><c>Func&lt;Socket, EndPoint, EndPoint&gt;</c>: the endpoint to bind instead.</summary>
    public const string Binding = "Binding";
    /// <summary><c>Action&lt;Socket, EndPoint&gt;</c>: before the OS connect (sync and async).</summary>
    public const string Connecting = "Connecting";
    /// <summary><c>Action&lt;Socket, object&gt;</c>: before a datagram is sent to an EndPoint,
    /// SocketAddress or SocketAsyncEventArgs target.</summary>
    public const string SendingTo = "SendingTo";
    /// <summary><c>Action&lt;Socket&gt;</c>: after Dispose(bool) (Dispose, Close, finalizer).</summary>
    public const string Disposed = "Disposed";
    /// <summary><c>Action&lt;Socket&gt;</c>: a closed socket is used, or a call on it failed
    /// because it was closed; the hook may throw a SocketException that says why it was closed.</summary>
    public const string UsedAfterClose = "UsedAfterClose";

    /// <summary><c>AsyncLocal&lt;bool&gt;</c>, created by the woven type itself: true in a flow
    /// marked with [NewAddressPerSocket] (mode attribute). Shared by the app's SockShim and the hooks.</summary>
    public const string AddressScope = "AddressScope";

    /// <summary>Literal fields recording where the woven assembly came from, checked at start-up.</summary>
    public const string SourceRuntimeVersion = "SourceRuntimeVersion";
    public const string SourceMvid = "SourceMvid";
    public const string WeaverVersion = "WeaverVersion";
    /// <summary>Length and last-write time (UTC ticks) of the source file: a stat at start-up
    /// tells whether the runtime's own System.Net.Sockets is still the one that was woven,
    /// without the ~10 ms of reading its metadata for the MVID.</summary>
    public const string SourceFileLength = "SourceFileLength";
    public const string SourceFileTime = "SourceFileTime";

    /// <summary>Bumped whenever the woven code changes, so caches are rebuilt.</summary>
    public const string CurrentWeaverVersion = "5";
}
