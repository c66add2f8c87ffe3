using System.CommandLine;
using SockShim.Interceptor.Store;
using SockShim.Interceptor.Weaving;

namespace SockShim.Interceptor.Cli;

/// <summary><c>sockshim prepare</c>: weaves every installed runtime's System.Net.Sockets ahead of time.</summary>
internal static class PrepareCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var cache = CacheOption.Create();
        var command = new Command("prepare", "Weave System.Net.Sockets of every installed .NET runtime ahead of time (sockshim run does it on first use)") { cache };
        command.SetAction(parse =>
        {
            try
            {
                foreach (var prepared in CacheOption.Store(parse, cache, StoreWeaver.Weave).PrepareAll(line => output.WriteLine(line)))
                    output.WriteLine($"runtime {prepared.Runtime.Version}: {(prepared.ReadyToRun ? "ReadyToRun" : "IL-only")}{(prepared.FromCache ? " (cached)" : "")} {prepared.AssemblyPath}");
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
