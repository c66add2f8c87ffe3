using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.Sockets;
using System.Reflection;

namespace SockShim.Interceptor.Contract;

/// <summary>
/// The hook contract between the woven System.Net.Sockets and SockShim: one method per slot.
/// The weaver creates a static delegate field per method (named after it, typed by its
/// signature) in a class it adds to the woven assembly; the startup hook's trampolines and the
/// real hooks implement this interface and fill those fields. A slot added here is a compile
/// error in every implementation until it is served, and the weaver creates it by itself.
/// This one file is linked into the weaver, the startup hook and the hooks.
/// </summary>
internal interface ISocketHooks
{
    /// <summary>AF_INET_TUPLE / AF_INET6_TUPLE to the real family (before the OS socket is made).</summary>
    AddressFamily MapFamily(AddressFamily requested);
    /// <summary>A new socket and the family asked for.</summary>
    void Created(Socket socket, AddressFamily requested);
    /// <summary>Before the OS bind: the endpoint to bind instead.</summary>
    EndPoint Binding(Socket socket, EndPoint endpoint);
    /// <summary>Before the OS connect (sync and async).</summary>
    void Connecting(Socket socket, EndPoint remote);
    /// <summary>Before a datagram is sent to an EndPoint, SocketAddress or SocketAsyncEventArgs target.</summary>
    void SendingTo(Socket socket, object target);
    /// <summary>After Dispose(bool) (Dispose, Close, finalizer).</summary>
    void Disposed(Socket socket);
    /// <summary>A closed socket is used, or a call on it failed because it was closed; the hook
    /// may throw a SocketException that says why it was closed.</summary>
    void UsedAfterClose(Socket socket);
}

/// <summary>The names of the woven type and of its literal fields, and the slots from <see cref="ISocketHooks"/>.</summary>
internal static class HookContract
{
    public const string TypeNamespace = "System.Net.Sockets";
    public const string TypeName = "SockShimHooks";
    public const string FullTypeName = TypeNamespace + "." + TypeName;

    /// <summary>The woven class whose static constructor wires SockShim (see <see cref="WireVariable"/>),
    /// run by calling its empty <see cref="WiringMethodName"/>: only a use of a socket that needs
    /// SockShim calls it, so an app whose sockets never need it never loads SockShim.</summary>
    public const string WiringTypeName = "SockShimWiring";
    public const string WiringMethodName = "Ensure";

    /// <summary>AF_INET_TUPLE and AF_INET6_TUPLE ("TI", "TJ"; no real family uses them), as the
    /// woven code and the trampolines test for them (Shim's TupleFamilies is the public name).</summary>
    public const AddressFamily TupleInet = (AddressFamily)0x5449, TupleInet6 = (AddressFamily)0x544A;

    /// <summary><c>AsyncLocal&lt;bool&gt;</c>, created by the woven type itself: true in a flow
    /// marked with [NewAddressPerSocket] (mode attribute). Shared by the app's SockShim and the hooks.</summary>
    public const string AddressScope = "AddressScope";

    /// <summary>The instance field (of type object) the weaver adds to Socket, where the hooks
    /// keep what SockShim knows about that socket; read and written through UnsafeAccessor.</summary>
    public const string StateField = "_sockShimState";

    /// <summary>Literal fields recording where the woven assembly came from, checked at start-up.</summary>
    public const string SourceRuntimeVersion = "SourceRuntimeVersion";
    public const string SourceMvid = "SourceMvid";
    public const string WeaverVersion = "WeaverVersion";
    /// <summary>Length and last-write time (UTC ticks) of the source file: a stat at start-up
    /// tells whether the runtime's own System.Net.Sockets is still the one that was woven,
    /// without the ~10 ms of reading its metadata for the MVID.</summary>
    public const string SourceFileLength = "SourceFileLength";
    public const string SourceFileTime = "SourceFileTime";

    /// <summary>The variable in which the launcher tells the startup hook which woven copy it
    /// checked against its recorded SHA-256 for one runtime version, as
    /// "INODE:SIZE:CTIMESECONDS.NANOSECONDS:PATH". Any write to the file after that check changes
    /// its change time (only root can set it), so one stat in the app proves the bytes are still
    /// the ones hashed, without hashing the assembly in every app's start-up.</summary>
    public static string WovenRecordVariable(string runtimeVersion)
    {
        var name = ("SOCKSHIM_WOVEN_" + runtimeVersion).ToCharArray();
        for (int i = 0; i < name.Length; i++) if (!char.IsAsciiLetterOrDigit(name[i])) name[i] = '_';
        return new string(name);
    }

    /// <summary>The variable naming SockShim's wiring assembly (the startup hook's own file): when
    /// it is set, the woven type's static constructor, which runs at the first use of any slot,
    /// loads that assembly, calls <see cref="WireTypeName"/>.<see cref="WireMethodName"/>(the
    /// woven type, its AddressScope, then its source runtime version, file length, file time and
    /// MVID) and stores the delegates it returns in the slots (<see cref="SlotNames"/>' order).
    /// `sockshim run` sets it instead of DOTNET_STARTUP_HOOKS where it has proved that the app
    /// will load the woven copy; an app that never uses a socket then pays nothing. The identity
    /// comes as arguments and the slots are stored by the woven code, so the wiring uses no
    /// reflection beyond finding its entry.</summary>
    public const string WireVariable = "SOCKSHIM_WIRE";
    public const string WireTypeName = "SockShimWire";
    public const string WireMethodName = "Wire";

    /// <summary>Set by `sockshim run` (and compare), not printed by `sockshim env`: a refusal
    /// tells the user to start the app with `sockshim run` only when it was not.</summary>
    public const string LauncherVariable = "SOCKSHIM_LAUNCHER";

    /// <summary>The exit code of an app SockShim refused to run unpatched: the startup hook's at
    /// start, and `sockshim run`'s for an app it refuses before starting.</summary>
    public const int RefusedExitCode = 97;

    /// <summary>Bumped whenever the woven code changes, so caches are rebuilt.</summary>
    public const string CurrentWeaverVersion = "11";

    /// <summary>The framework contracts woven code may reference besides those System.Net.Sockets
    /// already does (the weaver refuses any other): a weave reads them, so they are among what
    /// keys a copy woven from an app's own runtime (Store.AppOverlay).</summary>
    public static readonly string[] AddedReferences = ["System.Threading", "System.Runtime.Loader"];

    /// <summary>Every slot: its name and the parameter and return types of its delegate.</summary>
    public static IEnumerable<MethodInfo> Slots => SlotNames.Select(name => typeof(ISocketHooks).GetMethod(name)!);

    /// <summary>The slots in a fixed order: the wiring entry returns its delegates in this order
    /// and the woven static constructor stores them in it (reflection's order of the interface's
    /// methods is not promised). The weaver stops when this and the interface differ.</summary>
    public static readonly string[] SlotNames =
    [
        nameof(ISocketHooks.MapFamily), nameof(ISocketHooks.Created), nameof(ISocketHooks.Binding), nameof(ISocketHooks.Connecting),
        nameof(ISocketHooks.SendingTo), nameof(ISocketHooks.Disposed), nameof(ISocketHooks.UsedAfterClose),
    ];

    /// <summary>The delegates of <paramref name="hooks"/>, one per slot in <see cref="SlotNames"/>'
    /// order, made without reflection: what the wiring entry hands the woven type.</summary>
    public static Delegate[] Delegates(ISocketHooks hooks) =>
    [
        new Func<AddressFamily, AddressFamily>(hooks.MapFamily), new Action<Socket, AddressFamily>(hooks.Created),
        new Func<Socket, EndPoint, EndPoint>(hooks.Binding), new Action<Socket, EndPoint>(hooks.Connecting),
        new Action<Socket, object>(hooks.SendingTo), new Action<Socket>(hooks.Disposed), new Action<Socket>(hooks.UsedAfterClose),
    ];

    /// <summary>Puts <paramref name="hooks"/>' methods in every slot of the woven type. The
    /// delegates bind the implementing class's own methods, not the interface's, so a call
    /// through a slot is a direct call. Each is of its field's own type, the one the weaver
    /// made (making Action/Func types here loaded System.Linq.Expressions into every app).</summary>
    [RequiresUnreferencedCode("reads the implementing class's interface map")]
    public static void Fill([DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicFields)] Type slots, ISocketHooks hooks)
    {
        var map = hooks.GetType().GetInterfaceMap(typeof(ISocketHooks));
        for (int i = 0; i < map.InterfaceMethods.Length; i++)
        {
            var slot = map.InterfaceMethods[i];
            var field = slots.GetField(slot.Name, BindingFlags.Public | BindingFlags.Static)
                ?? throw new InvalidOperationException($"the woven System.Net.Sockets has no slot {slot.Name}");
            field.SetValue(null, Delegate.CreateDelegate(field.FieldType, hooks, map.TargetMethods[i]));
        }
    }

    /// <summary>What slot <paramref name="name"/> holds now.</summary>
    public static T Current<T>([DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicFields)] Type slots, string name) where T : Delegate =>
        (T)slots.GetField(name, BindingFlags.Public | BindingFlags.Static)!.GetValue(null)!;
}
