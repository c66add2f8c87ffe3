using System.Reflection;

namespace SockShim;

/// <summary>
/// Marks code whose sockets get new addresses under <c>sockshim run --mode attribute</c>: every
/// socket created while the method runs, in its await continuations, and in tasks it starts.
/// On an assembly or a class it covers every method in it. The build step
/// (<c>SockShim.Attributes.targets</c>) rewrites each marked method to run inside an
/// <see cref="AddressScope"/>.
/// </summary>
[AttributeUsage(AttributeTargets.Assembly | AttributeTargets.Class | AttributeTargets.Struct | AttributeTargets.Method, Inherited = false)]
public sealed class NewAddressPerSocketAttribute : Attribute;

/// <summary>
/// The flow in which new sockets get new addresses (mode attribute). It flows with the
/// ExecutionContext: into await continuations and into tasks started inside it, not back out
/// to the caller. <c>using (AddressScope.Begin()) { ... }</c> does by hand what the attribute
/// does for a whole method.
/// </summary>
public static class AddressScope
{
    // Under the launcher the flag lives in the woven System.Net.Sockets, where the hooks (in their
    // own load context) read it too; without the launcher nothing reads it but IsActive.
    // The names are the hook contract's (Interceptor/Contract); a weaver test holds them equal.
    internal const string WovenType = "System.Net.Sockets.SockShimHooks", WovenField = "AddressScope";
    private static readonly AsyncLocal<bool> s_flag =
        typeof(System.Net.Sockets.Socket).Assembly.GetType(WovenType)?
            .GetField(WovenField, BindingFlags.Public | BindingFlags.Static)?.GetValue(null) as AsyncLocal<bool> ?? new AsyncLocal<bool>();

    /// <summary>Whether sockets created here and now get new addresses.</summary>
    public static bool IsActive => s_flag.Value;

    /// <summary>Enters the scope until the returned value is disposed.</summary>
    public static Scope Begin()
    {
        bool previous = s_flag.Value;
        s_flag.Value = true;
        return new Scope(previous);
    }

    /// <summary>Restores the state <see cref="Begin"/> found.</summary>
    public readonly struct Scope : IDisposable
    {
        private readonly bool _previous;
        internal Scope(bool previous) => _previous = previous;
        public void Dispose() => s_flag.Value = _previous;
    }
}
