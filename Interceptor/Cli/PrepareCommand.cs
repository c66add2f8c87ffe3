using System.CommandLine;
using SockShim.Interceptor.Store;
using SockShim.Interceptor.Weaving;

namespace SockShim.Interceptor.Cli;

/// <summary><c>sockshim prepare</c>: weaves every installed runtime's System.Net.Sockets ahead of time.</summary>
internal static class PrepareCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var cache = new Option<string?>("--cache") { Description = "where woven assemblies are kept (default $SOCKSHIM_CACHE or ~/.cache/sockshim)" };
        var command = new Command("prepare", "Weave System.Net.Sockets of every installed .NET runtime ahead of time (sockshim run does it on first use)") { cache };
        command.SetAction(parse =>
        {
            var store = new WovenStore(parse.GetValue(cache) ?? WovenStore.DefaultRoot);
            var runtimes = InstalledRuntimes.Find();
            if (runtimes.Count == 0)
            {
                error.WriteLine($"error: no Microsoft.NETCore.App runtime under {InstalledRuntimes.DotnetRoot()}/shared; set DOTNET_ROOT to the .NET installation");
                return 1;
            }
            try
            {
                foreach (var r in runtimes)
                {
                    var prepared = store.Prepare(r, line => output.WriteLine(line));
                    output.WriteLine($"runtime {r.Version}: {(prepared.ReadyToRun ? "ReadyToRun" : "IL-only")}{(prepared.FromCache ? " (cached)" : "")} {prepared.AssemblyPath}");
                }
            }
            catch (WeaveException ex)
            {
                error.WriteLine($"error: cannot weave: {ex.Message}");
                return 3;
            }
            return 0;
        });
        return command;
    }
}
