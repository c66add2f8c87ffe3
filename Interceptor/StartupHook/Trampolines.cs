using System.Net;
using System.Net.Sockets;
using System.Reflection;
using SockShim.Interceptor.Contract;

/// <summary>
/// What the woven slots hold until SockShim's hooks are needed. Loading the hooks (their load
/// context, the Stack, its configuration) costs milliseconds, and most sockets of most apps never
/// need them: a plain socket in mode tuple, every Dispose of a socket nobody gave an address. The
/// first socket that does need them loads them; the installer then puts the real handlers in the
/// slots, and calls that were already on their way here are passed on to them.
/// </summary>
internal sealed class Trampolines : ISocketHooks
{
    private const AddressFamily AF_INET_TUPLE = HookContract.TupleInet, AF_INET6_TUPLE = HookContract.TupleInet6;
    private static readonly object s_gate = new();
    private static volatile bool s_loaded;
    private static Type s_slots = null!;
    private static Func<string?> s_load = null!;
    private static bool s_modeAll, s_modeAttribute, s_ownWildcardBinds;
    private static AsyncLocal<bool>? s_scope;

    /// <summary>Reads the mode once; the trampolines then go into the slots (by the startup
    /// hook, or returned to the woven type's static constructor).</summary>
    public static void Configure(Type slots, Func<string?> load, AsyncLocal<bool>? scope)
    {
        s_slots = slots;
        s_load = load;
        string? mode = Environment.GetEnvironmentVariable("SOCKSHIM_MODE")?.Trim();
        s_modeAll = string.Equals(mode, "all", StringComparison.OrdinalIgnoreCase);
        s_modeAttribute = string.Equals(mode, "attribute", StringComparison.OrdinalIgnoreCase);
        s_ownWildcardBinds = (s_modeAll || s_modeAttribute) && string.Equals(Environment.GetEnvironmentVariable("SOCKSHIM_WILDCARDBIND")?.Trim(), "own", StringComparison.OrdinalIgnoreCase);
        s_scope = scope;
    }

    // What the installer put in a slot once the hooks are loaded. Never a trampoline: that
    // would call itself forever (the woven wiring stores a slot only where it is empty, so it
    // cannot put one back over a real handler); should it happen, say so instead of hanging.
    private static T Real<T>(string name) where T : Delegate
    {
        var held = HookContract.Current<T>(s_slots, name);
        return held is { Target: not Trampolines } ? held
            : throw new InvalidOperationException($"SockShim's slot {name} holds {(held is null ? "nothing" : "its trampoline")} after the hooks were loaded");
    }

    // The real MapFamily does exactly this; it never needs the hooks loaded.
    public AddressFamily MapFamily(AddressFamily family) => family switch
    {
        AF_INET_TUPLE => AddressFamily.InterNetwork,
        AF_INET6_TUPLE => AddressFamily.InterNetworkV6,
        _ => family,
    };

    public void Created(Socket socket, AddressFamily requested)
    {
        // In mode attribute a socket created in a marked flow is the first that needs the hooks.
        if (!s_loaded && requested is not (AF_INET_TUPLE or AF_INET6_TUPLE) && !(s_modeAttribute && s_scope?.Value == true)) return;
        Load();
        Real<Action<Socket, AddressFamily>>(nameof(ISocketHooks.Created))(socket, requested);
    }

    // Before the hooks are loaded no tuple socket exists, so no bind is SockShim's business,
    // unless wildcard binds get their own addresses (wildcardBind own).
    public EndPoint Binding(Socket socket, EndPoint endpoint)
    {
        if (!s_loaded && !(s_ownWildcardBinds && endpoint is IPEndPoint { Port: >= 0 } ip && (ip.Address.Equals(IPAddress.Any) || ip.Address.Equals(IPAddress.IPv6Any)))) return endpoint;
        Load();
        return Real<Func<Socket, EndPoint, EndPoint>>(nameof(ISocketHooks.Binding))(socket, endpoint);
    }

    public void Connecting(Socket socket, EndPoint endpoint)
    {
        if (!s_loaded && !s_modeAll) return;
        Load();
        Real<Action<Socket, EndPoint>>(nameof(ISocketHooks.Connecting))(socket, endpoint);
    }

    public void SendingTo(Socket socket, object target)
    {
        if (!s_loaded && !s_modeAll) return;
        Load();
        Real<Action<Socket, object>>(nameof(ISocketHooks.SendingTo))(socket, target);
    }

    public void Disposed(Socket socket)
    {
        if (s_loaded) Real<Action<Socket>>(nameof(ISocketHooks.Disposed))(socket);
    }

    // Only a socket the hooks closed has a reason to report.
    public void UsedAfterClose(Socket socket)
    {
        if (s_loaded) Real<Action<Socket>>(nameof(ISocketHooks.UsedAfterClose))(socket);
    }

    private static void Load()
    {
        if (s_loaded) return;
        lock (s_gate)
        {
            if (s_loaded) return;
            if (s_load() is { } problem) StartupHook.Refuse(problem);
            s_loaded = true;
        }
    }
}
