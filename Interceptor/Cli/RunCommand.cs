using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using SockShim.Interceptor.Launch;
using SockShim.Interceptor.Store;
using SockShim.Interceptor.Weaving;

namespace SockShim.Interceptor.Cli;

/// <summary><c>sockshim run [options] -- command [args]</c>: runs any .NET command with per-socket addresses.</summary>
internal static class RunCommand
{
    public static Command Create(StackOptions stack, TextWriter output, TextWriter error, WovenStore.Tools? weaver)
    {
        var cache = CacheOption.Create();
        var verbose = new Option<bool>("--verbose") { Description = "say what the launcher prepares and sets, and log each address the app takes and gives back (SOCKSHIM_LOG=debug)" };
        var withHook = new Option<bool>("--startup-hook")
        {
            Description = "start the app with the startup hook (the check at start) even where the launcher proves that `dotnet app.dll` loads the woven " +
                          "System.Net.Sockets; by default such an app starts without one (the woven copy wires itself at the first socket, and an app that never " +
                          "opens one loads nothing of SockShim), and the processes it starts keep the hook",
        };
        // The default since the start without a hook became it; kept so scripts that pass it still run.
        var noHook = new Option<bool>("--no-startup-hook") { Description = "the default: no startup hook where the launcher proves the woven copy loads", Hidden = true };
        var command = new Argument<string[]>("command") { Description = "the command to run, after --", Arity = ArgumentArity.OneOrMore };
        var run = new Command("run", "Run a .NET command (an apphost, dotnet app.dll, dotnet run, dotnet test) so that its sockets get their own addresses") { cache, verbose, withHook, noHook, command };
        stack.AddTo(run, forRun: true);
        run.SetAction(async (parse, ct) =>
        {
            var given = LaunchPlan.WithRunDefaults(stack.Given(parse));
            LaunchPlan.CheckSettings(given); // a bad setting stops here, before the app starts
            // An app that would run unpatched with nothing inside it to say so is refused before it starts.
            if (DeploymentCheck.Problem(parse.GetValue(command)!) is { } unservable)
            {
                error.WriteLine($"sockshim: not starting the app: {unservable} (exit code {DeploymentCheck.RefusedExitCode})");
                return DeploymentCheck.RefusedExitCode;
            }

            LaunchPlan.CheckToolDirectory(AppContext.BaseDirectory); // before anything is woven for it
            var store = CacheOption.Store(parse, cache, weaver);
            TextWriter? log = parse.GetValue(verbose) ? error : null;
            try { LaunchPlan.Prepare(store, log is null ? null : log.WriteLine, error.WriteLine); }
            catch (WeaveException ex)
            {
                error.WriteLine($"sockshim: cannot weave this runtime's System.Net.Sockets: {ex.Message}");
                return 3;
            }

            log?.WriteLine(weaver is null ? "sockshim: launcher: native (every runtime's woven copy is in the cache)" : "sockshim: launcher: the managed tool");
            LaunchPlan launch;
            try { launch = LaunchPlan.For(parse.GetValue(command)!, given, store, AppContext.BaseDirectory, verbose: parse.GetValue(verbose), tryWithoutHook: !parse.GetValue(withHook), progress: log is null ? null : line => log.WriteLine("sockshim: " + line)); }
            catch (AppRefusedException ex)
            {
                error.WriteLine($"sockshim: not starting the app: {ex.Message} (exit code {DeploymentCheck.RefusedExitCode})");
                return DeploymentCheck.RefusedExitCode;
            }
            catch (WeaveException ex)
            {
                // A self-contained app's own System.Net.Sockets the weaver cannot serve (one trimmed
                // past a funnel point): never started unwoven.
                error.WriteLine($"sockshim: not starting the app: its own System.Net.Sockets cannot be woven: {ex.Message} (exit code 3)");
                return 3;
            }
            catch (Exception ex) when (ex is IOException or InvalidDataException)
            {
                // A self-contained app's copy could not be made from its files (one missing, a
                // damaged bundle): one line naming it, as for any other bad input.
                error.WriteLine($"sockshim: cannot start {parse.GetValue(command)![0]} from a copy with its System.Net.Sockets woven: {ex.Message}");
                return 2;
            }
            foreach (var line in launch.Describe()) log?.WriteLine("sockshim: " + line);
            try
            {
                return await Run(launch, ct);
            }
            finally { launch.Cleanup(); }
        });
        return run;
    }

    private static async Task<int> Run(LaunchPlan plan, CancellationToken ct)
    {
        // The command becomes this process. Not `dotnet test`: its runsettings file is removed
        // after the run, so the launcher stays to wait for it.
        if (!plan.NeedsCleanup)
        {
            int failed = Exec.Replace(plan.Command, plan.Environment, out string why, plan.ExecutablePath);
            Console.Error.WriteLine($"sockshim: {why}");
            return failed;
        }
        var psi = LaunchPlan.StartInfo(plan.Command, plan.Environment);
        Process child;
        try { child = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception ex)
        {
            Console.Error.WriteLine($"sockshim: cannot start '{plan.Command[0]}': {ex.Message}");
            return 127;
        }
        using (child)
        {
            // Ctrl+C reaches the child through the terminal; SIGTERM is passed on. Either way
            // the launcher waits for the child and returns its exit code.
            using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; Signal(child, 15); });
            using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, ctx => ctx.Cancel = true);
            await child.WaitForExitAsync(CancellationToken.None);
            return child.ExitCode;
        }
    }

    private static void Signal(Process child, int signal)
    {
        try { Tmds.Linux.LibC.kill(child.Id, signal); } catch (InvalidOperationException) { }
    }
}
