using System.CommandLine;

namespace SockShim.Interceptor.Cli;

/// <summary><c>sockshim config</c>: checks the configuration and prints what would be used.</summary>
internal static class ConfigCommand
{
    public static Command Create(StackOptions stack, TextWriter output)
    {
        var command = new Command("config", "Check the configuration (options, SOCKSHIM_* variables, JSON file) and print the pools it gives");
        stack.AddTo(command);
        command.SetAction(parse =>
        {
            var settings = stack.Load(parse);
            using var built = Stack.AddressStack.Create(settings);
            output.WriteLine($"allocation: {settings.Allocation.ToString().ToLowerInvariant()}");
            output.WriteLine($"state directory: {settings.StateDirectory}");
            foreach (var pool in built.Pools)
                output.WriteLine($"pool {pool.Definition} strategy {pool.Definition.Strategy}, provisioner {pool.Provisioner.Name}");
            return 0;
        });
        return command;
    }
}
