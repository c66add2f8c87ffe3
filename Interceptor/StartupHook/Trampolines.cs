using System.Net;
using System.Net.Sockets;
using System.Reflection;

/// <summary>
/// What the woven slots hold until SockShim's hooks are needed. Loading the hooks (their load
/// context, the Stack, its configuration) costs milliseconds, and most sockets of most apps never
/// need them: a plain socket in mode tuple, every Dispose of a socket nobody gave an address. The
/// first socket that does need them loads them; the installer then puts the real handlers in the
/// slots, and calls that were already on their way here are passed on to them.
/// </summary>
internal static class Trampolines
{
    private const AddressFamily AF_INET_TUPLE = (AddressFamily)0x5449, AF_INET6_TUPLE = (AddressFamily)0x544A;
    private static readonly object s_gate = new();
    private static volatile bool s_loaded;
    private static Type s_slots = null!;
    private static Func<string?> s_load = null!;
    private static bool s_modeAll, s_modeAttribute;
    private static AsyncLocal<bool>? s_scope;

    public static void Install(Type slots, Func<string?> load)
    {
        s_slots = slots;
        s_load = load;
        string? mode = Environment.GetEnvironmentVariable("SOCKSHIM_MODE")?.Trim();
        s_modeAll = string.Equals(mode, "all", StringComparison.OrdinalIgnoreCase);
        s_modeAttribute = string.Equals(mode, "attribute", StringComparison.OrdinalIgnoreCase);
        s_scope = slots.GetField("AddressScope", BindingFlags.Public | BindingFlags.Static)?.GetValue(null) as AsyncLocal<bool>;
        Set("MapFamily", (Func<AddressFamily, AddressFamily>)MapFamily);
        Set("Created", (Action<Socket, AddressFamily>)Created);
        Set("Binding", (Func<Socket, EndPoint, EndPoint>)Binding);
        Set("Connecting", (Action<Socket, EndPoint>)Connecting);
        Set("SendingTo", (Action<Socket, object>)SendingTo);
        Set("Disposed", (Action<Socket>)Disposed);
        Set("UsedAfterClose", (Action<Socket>)UsedAfterClose);
    }

    private static void Set(string name, Delegate d) => s_slots.GetField(name, BindingFlags.Public | BindingFlags.Static)!.SetValue(null, d);

    private static T Real<T>(string name) where T : Delegate => (T)s_slots.GetField(name, BindingFlags.Public | BindingFlags.Static)!.GetValue(null)!;

    // The real MapFamily does exactly this; it never needs the hooks loaded.
    public static AddressFamily MapFamily(AddressFamily family) => family switch
    {
        AF_INET_TUPLE => AddressFamily.InterNetwork,
        AF_INET6_TUPLE => AddressFamily.InterNetworkV6,
        _ => family,
    };

    public static void Created(Socket socket, AddressFamily requested)
    {
        // In mode attribute a socket created in a marked flow is the first that needs the hooks.
        if (!s_loaded && requested is not (AF_INET_TUPLE or AF_INET6_TUPLE) && !(s_modeAttribute && s_scope?.Value == true)) return;
        Load();
        Real<Action<Socket, AddressFamily>>("Created")(socket, requested);
    }

    // Before the hooks are loaded no tuple socket exists, so no bind is SockShim's business.
    public static EndPoint Binding(Socket socket, EndPoint endpoint) =>
        s_loaded ? Real<Func<Socket, EndPoint, EndPoint>>("Binding")(socket, endpoint) : endpoint;

    public static void Connecting(Socket socket, EndPoint endpoint)
    {
        if (!s_loaded && !s_modeAll) return;
        Load();
        Real<Action<Socket, EndPoint>>("Connecting")(socket, endpoint);
    }

    public static void SendingTo(Socket socket, object target)
    {
        if (!s_loaded && !s_modeAll) return;
        Load();
        Real<Action<Socket, object>>("SendingTo")(socket, target);
    }

    public static void Disposed(Socket socket)
    {
        if (s_loaded) Real<Action<Socket>>("Disposed")(socket);
    }

    // Only a socket the hooks closed has a reason to report.
    public static void UsedAfterClose(Socket socket)
    {
        if (s_loaded) Real<Action<Socket>>("UsedAfterClose")(socket);
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
