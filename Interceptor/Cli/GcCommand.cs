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
        stack.AddTo(command);
        command.SetAction(parse =>
        {
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
