using System.Net;
using System.Net.Sockets;
using System.Reflection;
using SockShim.Interceptor.Contract;
using SockShim.Stack;
using SockShim.Stack.Errors;

namespace SockShim.Interceptor.Hooks;

/// <summary>Fills the woven slots of System.Net.Sockets with <see cref="SocketHooks"/>.</summary>
public static class HookInstaller
{
    /// <summary>Called by the startup hook: connects every slot. The stack is built from
    /// SOCKSHIM_* when a socket first needs it, not here: most apps create sockets long after
    /// start-up, and building it costs tens of milliseconds (the launcher has already checked
    /// the configuration, so a bad setting never gets this far from `sockshim run`).</summary>
    /// <param name="slots">The woven type, which the startup hook (or the woven copy's own
    /// wiring) has already checked; handed over, not looked up by name (parsing a type name costs
    /// a fresh process milliseconds).</param>
    public static void Install(Type slots) => Install(slots, new Lazy<AddressStack>(AddressStack.FromEnvironment));

    public static void Install(Type slots, Lazy<AddressStack> stack)
    {
        if (slots.FullName != HookContract.FullTypeName || slots.Assembly != typeof(Socket).Assembly || Type.GetTypeFromHandle(slots.TypeHandle) != slots)
            throw new InvalidOperationException($"{slots.AssemblyQualifiedName} is not the woven type of the System.Net.Sockets loaded");
        // Touch every dependency the handlers use now, so a missing one stops the app at
        // start-up instead of failing its first connect.
        _ = Tmds.Linux.LibC.getpid();
        SocketHooks.Use(stack);
        HookContract.Fill(slots, new SocketHooks());
    }
}
