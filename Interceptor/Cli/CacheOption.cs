using System.CommandLine;
using SockShim.Interceptor.Store;

namespace SockShim.Interceptor.Cli;

/// <summary>--cache, shared by the verbs that need the woven store.</summary>
internal static class CacheOption
{
    public static Option<string?> Create() =>
        new("--cache") { Description = "where woven assemblies are kept (default $SOCKSHIM_CACHE or ~/.cache/sockshim)" };

    public static WovenStore Store(ParseResult parse, Option<string?> option) => new(parse.GetValue(option) ?? WovenStore.DefaultRoot);
}
