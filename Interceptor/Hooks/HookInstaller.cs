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
    public static void Install() => Install(new Lazy<AddressStack>(AddressStack.FromEnvironment));

    public static void Install(Lazy<AddressStack> stack)
    {
        var slots = typeof(Socket).Assembly.GetType(HookContract.FullTypeName)
            ?? throw new InvalidOperationException("System.Net.Sockets is not woven");
        // Touch every dependency the handlers use now, so a missing one stops the app at
        // start-up instead of failing its first connect.
        _ = Tmds.Linux.LibC.getpid();
        SocketHooks.Use(stack);
        HookContract.Fill(slots, new SocketHooks());
    }
}
