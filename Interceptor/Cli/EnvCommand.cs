using System.CommandLine;
using SockShim.Interceptor.Launch;
using SockShim.Interceptor.Store;

namespace SockShim.Interceptor.Cli;

/// <summary><c>sockshim env</c>: prints the variables `sockshim run` would set, as shell exports,
/// for a shell or service manager that starts the app itself (and for start-up benchmarks).</summary>
internal static class EnvCommand
{
    public static Command Create(StackOptions stack, TextWriter output)
    {
        var cache = new Option<string?>("--cache") { Description = "where woven assemblies are kept" };
        var command = new Command("env", "Print, as shell exports, the variables that make .NET apps started from this shell use SockShim: eval \"$(sockshim env)\"") { cache };
        stack.AddTo(command, forRun: true);
        command.SetAction(parse =>
        {
            var given = RunCommand.WithRunDefaults(stack.Given(parse));
            Stack.Configuration.SettingsLoader.Load(given);
            var store = new WovenStore(parse.GetValue(cache) ?? WovenStore.DefaultRoot);
            foreach (var runtime in InstalledRuntimes.Find()) store.Prepare(runtime);
            var plan = LaunchPlan.For(["app"], given, store, AppContext.BaseDirectory);
            foreach (var (k, v) in plan.Environment)
                output.WriteLine($"export {k}='{v!.Replace("'", "'\\''")}'");
            return 0;
        });
        return command;
    }
}
