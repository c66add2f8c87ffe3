using System.Net;
using System.Net.Sockets;
using System.Reflection;
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
        var slots = typeof(Socket).Assembly.GetType("System.Net.Sockets.SockShimHooks")
            ?? throw new InvalidOperationException("System.Net.Sockets is not woven");
        // Touch every dependency the handlers use now, so a missing one stops the app at
        // start-up instead of failing its first connect.
        _ = Tmds.Linux.LibC.getpid();
        SocketHooks.Use(stack);
        Set(slots, "MapFamily", (Func<AddressFamily, AddressFamily>)SocketHooks.MapFamily);
        Set(slots, "Created", (Action<Socket, AddressFamily>)SocketHooks.Created);
        Set(slots, "Binding", (Func<Socket, EndPoint, EndPoint>)SocketHooks.Binding);
        Set(slots, "Connecting", (Action<Socket, EndPoint>)SocketHooks.Connecting);
        Set(slots, "SendingTo", (Action<Socket, object>)SocketHooks.SendingTo);
        Set(slots, "Disposed", (Action<Socket>)SocketHooks.Disposed);
        Set(slots, "UsedAfterClose", (Action<Socket>)SocketHooks.UsedAfterClose);
    }

    private static void Set(Type slots, string name, Delegate handler)
    {
        var field = slots.GetField(name, BindingFlags.Public | BindingFlags.Static)
            ?? throw new InvalidOperationException($"the woven System.Net.Sockets has no slot {name}");
        field.SetValue(null, handler);
    }
}
