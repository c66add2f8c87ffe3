using System.CommandLine;
using SockShim.Interceptor.Weaving;
using SockShim.Interceptor.Launch;
using SockShim.Interceptor.Store;

namespace SockShim.Interceptor.Cli;

/// <summary><c>sockshim env</c>: prints the variables `sockshim run` would set, as shell exports,
/// for a shell or service manager that starts the app itself (and for start-up benchmarks).</summary>
internal static class EnvCommand
{
    public static Command Create(StackOptions stack, TextWriter output, TextWriter error)
    {
        var cache = CacheOption.Create();
        var command = new Command("env", "Print, as shell exports, the variables that make .NET apps started from this shell use SockShim: eval \"$(sockshim env)\"") { cache };
        stack.AddTo(command, forRun: true);
        command.SetAction(parse =>
        {
            var given = Launch.LaunchPlan.WithRunDefaults(stack.Given(parse));
            LaunchPlan.CheckSettings(given); // a bad setting stops here, before the app starts
            LaunchPlan.CheckToolDirectory(AppContext.BaseDirectory); // before anything is woven for it
            var store = CacheOption.Store(parse, cache, StoreWeaver.Tools);
            try { store.PrepareAll(); }
            catch (Weaving.WeaveException ex)
            {
                error.WriteLine($"sockshim: cannot weave this runtime's System.Net.Sockets: {ex.Message}");
                return 3;
            }
            var plan = LaunchPlan.For(["app"], given, store, AppContext.BaseDirectory, launched: false);
            // What the plan removes (an inherited wiring variable) is not the printed set's business.
            foreach (var (k, v) in plan.Environment)
                if (v is not null) output.WriteLine($"export {k}='{v.Replace("'", "'\\''")}'");
            return 0;
        });
        return command;
    }
}
