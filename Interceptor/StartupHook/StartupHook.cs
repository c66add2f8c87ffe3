using System.Reflection;
using System.Runtime.Loader;
using SockShim.Interceptor.Contract;

/// <summary>
/// Runs before the app's Main (DOTNET_STARTUP_HOOKS). It checks that the woven
/// System.Net.Sockets is the one loaded and was woven from this very runtime, then loads
/// SockShim's hooks into their own load context (so their dependencies never meet the app's)
/// and lets them fill the woven slots. Anything wrong stops the app: never a silent unpatched run.
/// </summary>
internal static class StartupHook
{

    /// <summary>DOTNET_STARTUP_HOOKS' entry: before the app's Main.</summary>
    public static void Initialize() => Connect(wovenType: null);

    /// <summary>Checks that the loaded System.Net.Sockets is the woven copy the launcher checked,
    /// and puts the trampolines in its slots. <paramref name="wovenType"/> is the woven type when
    /// its own static constructor calls (<see cref="SockShimWire"/>): then the woven copy is loaded
    /// by definition, and only its record is checked.</summary>
    internal static void Connect(Type? wovenType)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        bool trace = Environment.GetEnvironmentVariable("SOCKSHIM_TRACE_STARTUP") == "1";
        string recordVariable = HookContract.WovenRecordVariable(Environment.Version.ToString());
        string? record = Environment.GetEnvironmentVariable(recordVariable);
        // Before anything of System.Net.Sockets is touched: the file must still be the one the
        // launcher checked against the SHA-256 recorded when it was woven.
        string? recordedPath = null;
        if (record is not null && WovenRecord.Check(record, out recordedPath) is { } changed) Refuse(changed);
        var recordChecked = clock.Elapsed;
        // Telling a user who did start the app with `sockshim run` to do so would send them in circles.
        bool launched = Environment.GetEnvironmentVariable(HookContract.LauncherVariable) is not null;
        string? problem = CheckWovenAssembly(out var slots, out string location, launched);
        if (problem is null && recordedPath is null)
            problem = $"the woven System.Net.Sockets ({location}) was loaded without the launcher's record of the copy it checked ({recordVariable})." +
                      (launched ? " The launcher set no record for this runtime version, or it was removed from the environment." : " Start the app with `sockshim run`, or with every variable `sockshim env` prints.");
        else if (problem is null && location != recordedPath)
            problem = $"the loaded System.Net.Sockets ({location}) is not the woven copy the launcher checked ({recordedPath})." +
                      (launched ? " A changed DOTNET_SHARED_STORE/DOTNET_ADDITIONAL_DEPS points elsewhere." : " Start the app with `sockshim run`.");
        if (problem is not null) Refuse(problem);
        if (wovenType is not null && wovenType != slots) Refuse($"the woven type that asked to be wired ({wovenType.Assembly.Location}) is not the one System.Net.Sockets.Socket uses ({location})");
        Trampolines.Install(slots!, LoadHooks);
        if (trace) Console.Error.WriteLine($"sockshim: woven assembly checked and slots set {(wovenType is null ? "by the startup hook" : "at the first use of a socket")} in {clock.Elapsed.TotalMilliseconds:F1} ms (its record in {recordChecked.TotalMicroseconds:F0} us)");
        // SOCKSHIM_EAGER_HOOKS=1 loads the hooks now, so a broken installation shows at start-up.
        if (Environment.GetEnvironmentVariable("SOCKSHIM_EAGER_HOOKS") == "1" && LoadHooks() is { } failed) Refuse(failed);
    }

    internal static void Refuse(string problem)
    {
        Console.Error.WriteLine("sockshim: " + problem);
        Console.Error.WriteLine("sockshim: refusing to run the app without its per-socket addresses (exit code 97).");
        Environment.Exit(HookContract.RefusedExitCode);
    }

    /// <summary>Loads SockShim's hooks into their own context and lets them fill the slots;
    /// a description of what went wrong, or null.</summary>
    private static string? LoadHooks()
    {
        try { return InstallHooks(); }
        catch (TargetInvocationException ex) when (ex.InnerException is not null) { return Describe(ex.InnerException); }
        catch (Exception ex) { return Describe(ex); }
    }

    private static string Describe(Exception ex) =>
        ex.GetType().Name == "ConfigurationException" ? ex.Message : $"the hooks could not be installed: {ex.GetType().Name}: {ex.Message}";

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static string? CheckWovenAssembly(out Type? hooks, out string location, bool launched)
    {
        var sockets = typeof(System.Net.Sockets.Socket).Assembly;
        // An assembly loaded from inside a single-file bundle has no path of its own.
        location = sockets.Location is { Length: > 0 } path ? path : "its own copy, from inside its single-file bundle";
        hooks = sockets.GetType(HookContract.FullTypeName);
        if (hooks is null)
            return $"the woven System.Net.Sockets was not loaded (the app loaded {location}). " +
                   (launched ? "A" : "Start the app with `sockshim run`; a") +
                   " self-contained app (single-file or not), or a changed DOTNET_ADDITIONAL_DEPS/DOTNET_SHARED_STORE, bypasses the woven copy" +
                   (launched ? ": publish the app framework-dependent (--self-contained false)." : ".");

        string wovenFrom = Literal(hooks, HookContract.SourceRuntimeVersion);
        string running = Environment.Version.ToString();
        var stock = new FileInfo(Path.Combine(Path.GetDirectoryName(typeof(object).Assembly.Location)!, "System.Net.Sockets.dll"));
        bool sameFile = stock.Exists && Literal(hooks, HookContract.SourceFileLength) == stock.Length.ToString() &&
                        Literal(hooks, HookContract.SourceFileTime) == stock.LastWriteTimeUtc.Ticks.ToString();
        if (wovenFrom != running || !sameFile)
            return $"the loaded System.Net.Sockets ({location}) was woven from runtime {wovenFrom} (MVID {Literal(hooks, HookContract.SourceMvid)}), " +
                   $"but this app runs on {running}{(wovenFrom == running ? ", whose System.Net.Sockets.dll has changed since" : "")}. Run `sockshim prepare` to weave this runtime.";
        return null;
    }

    private static string Literal(Type hooks, string name) => hooks.GetField(name)?.GetRawConstantValue() as string ?? "?";

    private static string? InstallHooks()
    {
        string dir = Path.GetDirectoryName(typeof(StartupHook).Assembly.Location)!;
        var context = new HookLoadContext(dir);
        var assembly = context.LoadFromAssemblyPath(Path.Combine(dir, "SockShim.Hooks.dll"));
        var install = assembly.GetType("SockShim.Interceptor.Hooks.HookInstaller", throwOnError: true)!.GetMethod("Install", Type.EmptyTypes)!;
        install.Invoke(null, null);
        return null;
    }

    /// <summary>SockShim's own assemblies, found through the sockshim tool's deps file (it lists
    /// every dependency, RID-specific ones included); the framework (and so the woven
    /// System.Net.Sockets) from the default context, shared with the app.</summary>
    private sealed class HookLoadContext(string directory) : AssemblyLoadContext("SockShim", isCollectible: false)
    {
        // A published tool has every dependency beside it; the deps file (a JSON parse of some
        // milliseconds) is read only for one that is not there, as in a build output folder.
        private AssemblyDependencyResolver? _resolver;

        protected override Assembly? Load(AssemblyName name)
        {
            if (IsFramework(name)) return null;
            string path = Path.Combine(directory, name.Name + ".dll");
            if (!File.Exists(path))
            {
                _resolver ??= new AssemblyDependencyResolver(Path.Combine(directory, "SockShim.Interceptor.dll"));
                path = _resolver.ResolveAssemblyToPath(name) ?? "";
            }
            return path.Length > 0 ? LoadFromAssemblyPath(path) : null;
        }

        private static bool IsFramework(AssemblyName name) =>
            File.Exists(Path.Combine(Path.GetDirectoryName(typeof(object).Assembly.Location)!, name.Name + ".dll"));
    }
}
