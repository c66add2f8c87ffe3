using System.CommandLine;
using SockShim.Stack.Addressing;
using SockShim.Stack.Configuration;
using SockShim.Stack.Policy;
using SockShim.Interceptor.Host;

namespace SockShim.Interceptor.Cli;

/// <summary><c>sockshim gc</c>: frees what processes that died left behind.</summary>
internal static class GcCommand
{
    public static Command Create(StackOptions stack, TextWriter output, TextWriter error)
    {
        var command = new Command("gc", "Free the table entries of processes that are gone, and remove SockShim-marked addresses no live process holds from the interfaces; nothing else is touched");
        var overlays = new Option<bool>("--overlays") { Description = $"also remove the self-contained apps' overlays in this account's cache that no live process runs from and no launch used in the last {Store.OverlaySweep.Idle.TotalMinutes:0} minutes (the next run makes them again)" };
        var cache = CacheOption.Create();
        command.Options.Add(overlays);
        command.Options.Add(cache);
        stack.AddTo(command);
        command.SetAction(parse =>
        {
            if (parse.GetValue(overlays))
            {
                Store.OverlaySweep.Report swept;
                try { swept = Store.OverlaySweep.Sweep(CacheOption.Store(parse, cache, null).Root, DateTime.UtcNow); }
                catch (SockShim.Stack.Claims.UntrustedStateException ex)
                {
                    error.WriteLine("sockshim gc: " + ex.Message);
                    return 2;
                }
                foreach (var removed in swept.Removed) output.WriteLine($"removed overlay {removed}");
                foreach (var (overlay, pid) in swept.InUse) output.WriteLine($"kept overlay {overlay} (pid {pid} runs from it)");
                foreach (var p in swept.Problems) error.WriteLine("sockshim gc: " + p);
                output.WriteLine($"{swept.Removed.Count} overlays removed, {swept.InUse.Count} in use");
            }
            var report = HostSweep.Collect(stack.StateDirectory(parse));
            foreach (var (pool, address, pid) in report.Reclaimed) output.WriteLine($"freed {address} in pool {pool} (held by pid {pid}, gone)");
            foreach (var (ifname, address) in report.Removed) output.WriteLine($"removed {address} from {ifname}");
            foreach (var p in report.Problems) error.WriteLine("sockshim gc: " + p);
            output.WriteLine($"{report.Reclaimed.Count} table entries freed, {report.Removed.Count} addresses removed");
            return report.Problems.Count == 0 ? 0 : 2;
        });
        return command;
    }
}
