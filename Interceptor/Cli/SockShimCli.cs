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
        root.Subcommands.Add(RunCommand.Create(stack, output, error));
        root.Subcommands.Add(EnvCommand.Create(stack, output, error));
        root.Subcommands.Add(ServeCommand.Create(stack, output, error));
        root.Subcommands.Add(WeaveAttributesCommand.Create(output, error));
        root.Subcommands.Add(CompareCommand.Create(stack, output, error));
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0 && args.Length > 0)
        {
            // A mistyped or out-of-range option: one line each, exit 2, like every other bad input
            // (no verb at all still shows the usage).
            foreach (var e in parse.Errors) error.WriteLine($"sockshim: {e.Message} (see `sockshim {args[0]} --help`)");
            return 2;
        }
        try
        {
            return parse.Invoke(new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false });
        }
        catch (ArgumentException ex) when (ex.ParamName is null)
        {
            error.WriteLine("sockshim: " + ex.Message);
            return 2;
        }
        catch (SockShim.Stack.Claims.UntrustedStateException ex)
        {
            // Host state another account could have made: refused, saying what and what to do.
            error.WriteLine("sockshim: " + ex.Message);
            return 2;
        }
        catch (ConfigurationException ex)
        {
            // A user's mistake: the message says what and where; no stack trace. One problem is
            // one line (what a script or a log shows first); several are listed, one a line.
            error.WriteLine(ex.Problems.Count == 1 ? "sockshim: " + ex.Problems[0] : ex.Message);
            return 2;
        }
    }
}
