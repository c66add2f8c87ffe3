using System.CommandLine;
using SockShim.Interceptor.Store;

namespace SockShim.Interceptor.Cli;

/// <summary>--cache, shared by the verbs that need the woven store.</summary>
internal static class CacheOption
{
    public static Option<string?> Create() =>
        new("--cache") { Description = "where woven assemblies are kept (default $SOCKSHIM_CACHE or ~/.cache/sockshim)" };

    /// <summary>The store the option names; <paramref name="weaver"/> null: one that only uses
    /// the cache (the fast launcher's).</summary>
    public static WovenStore Store(ParseResult parse, Option<string?> option, WovenStore.Tools? weaver) => new(parse.GetValue(option) ?? WovenStore.DefaultRoot, weaver);
}
