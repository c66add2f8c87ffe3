using System.CommandLine;
using SockShim.Interceptor.Launch;
using SockShim.Interceptor.Store;
using SockShim.Interceptor.Weaving;

namespace SockShim.Interceptor.Cli;

/// <summary><c>sockshim prepare [APP]</c>: weaves ahead of time, so the first `run` starts at
/// once: every installed runtime's System.Net.Sockets, and for a self-contained APP (single-file
/// or not) the copy it is started from.</summary>
internal static class PrepareCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var cache = CacheOption.Create();
        var app = new Argument<string?>("app")
        {
            Description = "an app as `sockshim run` would start it (its apphost, single-file executable or path): its own copy is prepared too",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var command = new Command("prepare", "Weave System.Net.Sockets of every installed .NET runtime, and of a self-contained APP, ahead of time (sockshim run does it on first use)") { cache, app };
        command.SetAction(parse =>
        {
            var store = CacheOption.Store(parse, cache, StoreWeaver.Tools);
            string? given = parse.GetValue(app);
            if (given is not null && !File.Exists(given))
            {
                error.WriteLine($"error: APP '{given}' is not a file; give the app's executable, as `sockshim run -- APP` would start it (example: sockshim prepare ./bin/publish/MyApp)");
                return 2;
            }
            // Given as a path, never looked up on PATH.
            string[]? started = given is null ? null : [Path.GetFullPath(given)];
            if (started is not null && DeploymentCheck.Problem(started) is { } unservable)
            {
                error.WriteLine($"sockshim: not preparing the app: {unservable} (exit code {DeploymentCheck.RefusedExitCode})");
                return DeploymentCheck.RefusedExitCode;
            }
            try
            {
                foreach (var prepared in store.PrepareAll(line => output.WriteLine(line)))
                    output.WriteLine($"runtime {prepared.Runtime.Version}: {(prepared.ReadyToRun ? "ReadyToRun" : "IL-only")}{(prepared.FromCache ? " (cached)" : "")} {prepared.AssemblyPath}");
                if (started is null) return 0;
                if (DeploymentCheck.SelfContained(started) is not { } selfContained)
                {
                    output.WriteLine($"app {started[0]}: runs on the installed runtimes above (framework-dependent)");
                    return 0;
                }
                var overlay = AppOverlay.For(store, selfContained, line => output.WriteLine(line));
                output.WriteLine(overlay.RunsOn is { } runtime
                    ? $"app {started[0]}: trimmed, its code on the installed runtime {runtime.Version}, started from {overlay.Executable}{(overlay.FromCache ? " (cached)" : "")}"
                    : $"app {started[0]}: {(selfContained.SingleFile ? "single-file" : "self-contained")} on its own runtime {selfContained.RuntimeVersion}, " +
                      $"started from {overlay.Executable}{(overlay.FromCache ? " (cached)" : "")}");
            }
            catch (WeaveException ex)
            {
                error.WriteLine($"error: cannot weave: {ex.Message}");
                return 3;
            }
            catch (AppRefusedException ex) // a trimmed app with no installed runtime of its version
            {
                error.WriteLine($"sockshim: not preparing the app: {ex.Message} (exit code {DeploymentCheck.RefusedExitCode})");
                return DeploymentCheck.RefusedExitCode;
            }
            catch (Exception ex) when (ex is InvalidDataException or IOException) // a file of the app missing, or its bundle damaged
            {
                error.WriteLine($"error: {given}: {ex.Message}");
                return 2;
            }
            return 0;
        });
        return command;
    }
}
