using System.CommandLine;
using SockShim.Stack.Configuration;

namespace SockShim.Interceptor.Cli;

/// <summary>Runs a parsed command line the way every sockshim verb answers: a user's mistake is
/// one clear line and exit 2, never a stack trace. Shared by the tool and the fast launcher.</summary>
internal static class Invocation
{
    /// <summary>Parses and runs <paramref name="args"/> against <paramref name="root"/>, every
    /// user mistake one clear line and exit 2: the tool's commands, and the fast launcher's.</summary>
    public static int Invoke(Command root, string[] args, TextWriter output, TextWriter error)
    {
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
