using SockShim.Interceptor.Contract;

/// <summary>
/// The entry the woven System.Net.Sockets calls from its hook type's static constructor when
/// SOCKSHIM_WIRE names this assembly (see the weave step WireOnFirstUse): the same checks and
/// trampolines as the startup hook, at the first use of a socket instead of before Main. The
/// launcher chooses this only where it proved the woven copy will be the one loaded; there a
/// bypass cannot happen, and an app that never uses a socket never loads SockShim.
/// </summary>
public static class SockShimWire
{
    /// <summary>Called once, from the static constructor of <paramref name="wovenType"/>, with its
    /// AddressScope and the identity it was stamped with; returns the trampolines, one per slot
    /// in HookContract.SlotNames' order, which the caller stores (HookContract.WireTypeName /
    /// WireMethodName name this).</summary>
    public static Delegate[] Wire(Type wovenType, object? addressScope, string sourceRuntimeVersion, string sourceFileLength, string sourceFileTime, string sourceMvid)
    {
        // Its name and assembly, compared without Assembly.GetType: parsing a type name costs a
        // fresh process milliseconds (the parser's first run and its JIT). And the runtime's own
        // type object: a Type subclass could claim that name and assembly.
        if (wovenType.FullName != HookContract.FullTypeName || wovenType.Assembly != typeof(System.Net.Sockets.Socket).Assembly
            || Type.GetTypeFromHandle(wovenType.TypeHandle) != wovenType)
            StartupHook.Refuse($"{HookContract.WireVariable} wiring was asked for by {wovenType.AssemblyQualifiedName}, not the woven type that System.Net.Sockets.Socket uses");
        return StartupHook.Wire(wovenType, addressScope as AsyncLocal<bool>, sourceRuntimeVersion, sourceFileLength, sourceFileTime, sourceMvid);
    }
}
