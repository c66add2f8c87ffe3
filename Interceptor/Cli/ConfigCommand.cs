using System.CommandLine;
using SockShim.Stack.Configuration;
using SockShim.Stack.Provisioning;

namespace SockShim.Interceptor.Cli;

/// <summary><c>sockshim config</c>: checks the configuration and prints what would be used. It
/// reads the settings and touches nothing on the host: no table, no address, no route, no lease.
/// <c>--check-host</c> also checks (reading only) that this host can serve every pool.</summary>
internal static class ConfigCommand
{
    public static Command Create(StackOptions stack, TextWriter output, TextWriter error)
    {
        var checkHost = new Option<bool>("--check-host") { Description = "also check this host can serve the pools: interfaces exist, AnyIP prefixes are routed here, the capabilities are held (reads only)" };
        var command = new Command("config", "Check the configuration (options, SOCKSHIM_* variables, JSON file) and print the pools it gives; changes nothing on the host") { checkHost };
        stack.AddTo(command);
        command.SetAction(parse =>
        {
            var spec = stack.Load(parse);
            output.WriteLine($"allocation: {spec.Allocation.ToString().ToLowerInvariant()}");
            output.WriteLine($"state directory: {spec.StateDirectory}");
            foreach (var pool in spec.Pools) output.WriteLine(Describe(pool));
            if (!parse.GetValue(checkHost)) return 0;
            var problems = HostChecks.Run(spec);
            if (problems.Count == 0)
            {
                output.WriteLine("host: every pool can be served here");
                return 0;
            }
            error.WriteLine(new ConfigurationException(problems).Message.Replace("SockShim configuration is invalid:", "sockshim config: this host cannot serve the configuration:"));
            return 2;
        });
        return command;
    }

    private static string Describe(PoolSpec pool) => pool switch
    {
        LocalPoolSpec local => $"pool {local.Addresses} strategy {local.Addresses.Strategy}, provisioner {Name(local.Provisioner)}, source {local.Source.ToString().ToLowerInvariant()}" +
            (local.Dscp is { } d ? $", dscp {d}" : "") + (local.Prefetch > 0 ? $", prefetch {local.Prefetch}" : ""),
        HelperPoolSpec helper => $"pool {helper.Name} from the helper at {helper.SocketPath}",
        _ => pool.Name,
    };

    private static string Name(ProvisionerSpec p) => p switch
    {
        NetlinkProvisionerSpec n => $"netlink on {n.Interface}" + (n.Announce ? " (announced)" : ""),
        AnyIpProvisionerSpec a => "anyip" + (a.AddRoute ? " (adds its local route)" : ""),
        _ => "loopback",
    };
}
