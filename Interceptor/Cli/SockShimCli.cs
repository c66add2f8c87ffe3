using System.CommandLine;
using SockShim.Stack.Configuration;

namespace SockShim.Interceptor.Cli;

/// <summary>The <c>sockshim</c> command: one verb per file, output through writers tests can read.</summary>
public static class SockShimCli
{
    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        var root = new RootCommand("SockShim: one IP address per socket for .NET processes");
        var stack = new StackOptions();
        root.Subcommands.Add(ConfigCommand.Create(stack, output, error));
        root.Subcommands.Add(StatusCommand.Create(stack, output));
        root.Subcommands.Add(GcCommand.Create(stack, output, error));
        root.Subcommands.Add(PrepareCommand.Create(output, error));
        root.Subcommands.Add(RunCommand.Create(stack, output, error, Weaving.StoreWeaver.Tools));
        root.Subcommands.Add(EnvCommand.Create(stack, output, error));
        root.Subcommands.Add(ServeCommand.Create(stack, output, error));
        root.Subcommands.Add(WeaveAttributesCommand.Create(output, error));
        root.Subcommands.Add(CompareCommand.Create(stack, output, error));
        return Invocation.Invoke(root, args, output, error);
    }
}
