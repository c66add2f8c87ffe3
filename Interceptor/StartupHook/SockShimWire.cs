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
    /// <summary>Called once, from the static constructor of <paramref name="wovenType"/>
    /// (HookContract.WireTypeName / WireMethodName name this).</summary>
    public static void Wire(Type wovenType)
    {
        if (wovenType.FullName != HookContract.FullTypeName)
            StartupHook.Refuse($"{HookContract.WireVariable} wiring was asked for by {wovenType.FullName}, not the woven {HookContract.FullTypeName}");
        StartupHook.Connect(wovenType);
    }
}
