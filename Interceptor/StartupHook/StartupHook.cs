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
    public static void Initialize()
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        bool launched = Environment.GetEnvironmentVariable(HookContract.LauncherVariable) is not null;
        string? recordedPath = CheckRecord(out string recordVariable);
        string? problem = CheckWovenAssembly(out var slots, out string location, launched) ?? CheckRecordedPath(location, recordedPath, recordVariable, launched);
        if (problem is not null) Refuse(problem);
        Trampolines.Configure(slots!, () => LoadHooks(slots!), slots!.GetField(HookContract.AddressScope, BindingFlags.Public | BindingFlags.Static)?.GetValue(null) as AsyncLocal<bool>);
        HookContract.Fill(slots!, new Trampolines());
        Started("by the startup hook", clock, slots!);
    }

    /// <summary>SockShimWire's: at the first use of a socket, from the woven type's static
    /// constructor, which passes what the startup hook reads by reflection (its AddressScope and
    /// the identity StampIdentity wrote) and stores the trampolines returned in its slots.</summary>
    internal static Delegate[] Wire(Type woven, AsyncLocal<bool>? scope, string wovenFrom, string sourceLength, string sourceTime, string sourceMvid)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        bool launched = Environment.GetEnvironmentVariable(HookContract.LauncherVariable) is not null;
        string location = LoadedFrom(woven.Assembly, out bool bundled);
        string? recordedPath = CheckRecord(out string recordVariable);
        string? problem = CheckIdentity(location, bundled, wovenFrom, sourceLength, sourceTime, sourceMvid) ?? CheckRecordedPath(location, recordedPath, recordVariable, launched);
        if (problem is not null) Refuse(problem);
        Trampolines.Configure(woven, () => LoadHooks(woven), scope);
        var wired = HookContract.Delegates(new Trampolines());
        Started("at the first use of a socket", clock, woven);
        return wired;
    }

    private static void Started(string how, System.Diagnostics.Stopwatch clock, Type slots)
    {
        if (Environment.GetEnvironmentVariable("SOCKSHIM_TRACE_STARTUP") == "1")
            Console.Error.WriteLine($"sockshim: woven assembly checked and slots set {how} in {clock.Elapsed.TotalMilliseconds:F2} ms");
        // SOCKSHIM_EAGER_HOOKS=1 loads the hooks now, so a broken installation shows at once.
        if (Environment.GetEnvironmentVariable("SOCKSHIM_EAGER_HOOKS") == "1" && LoadHooks(slots) is { } failed) Refuse(failed);
    }

    /// <summary>Before anything of System.Net.Sockets is used: the file must still be the one
    /// the launcher checked against the SHA-256 recorded when it was woven (refused here when it
    /// changed). Its path, or null when there is no record.</summary>
    private static string? CheckRecord(out string recordVariable)
    {
        recordVariable = HookContract.WovenRecordVariable(Running);
        if (Environment.GetEnvironmentVariable(recordVariable) is not { } record) return null;
        if (WovenRecord.Check(record, out string? recordedPath) is { } changed) Refuse(changed);
        return recordedPath;
    }

    private static string? CheckRecordedPath(string location, string? recordedPath, string recordVariable, bool launched) =>
        recordedPath is null
            ? $"the woven System.Net.Sockets ({location}) was loaded without the launcher's record of the copy it checked ({recordVariable})." +
              (launched ? " The launcher set no record for this runtime version, or it was removed from the environment." : " Start the app with `sockshim run`, or with every variable `sockshim env` prints.")
        : location == recordedPath ? null
        : $"the loaded System.Net.Sockets ({location}) is not the woven copy the launcher checked ({recordedPath})." +
          (launched ? " A changed DOTNET_SHARED_STORE/DOTNET_ADDITIONAL_DEPS points elsewhere." : " Start the app with `sockshim run`.");

    // Read once: Environment.Version parses an attribute of System.Private.CoreLib.
    private static string Running => s_running ??= Environment.Version.ToString();
    private static string? s_running;

    // No app code runs after a refusal: Environment.Exit would run the app's ProcessExit
    // handlers, and one that uses a socket while the refusal is inside the woven copy's wiring
    // (its static constructor) would wait for that constructor forever.
    internal static void Refuse(string problem)
    {
        Console.Error.WriteLine("sockshim: " + problem);
        Console.Error.WriteLine("sockshim: refusing to run the app without its per-socket addresses (exit code 97).");
        Console.Error.Flush();
        WovenRecord.Exit(HookContract.RefusedExitCode);
    }

    /// <summary>Loads SockShim's hooks into their own context and lets them fill the slots;
    /// a description of what went wrong, or null.</summary>
    private static string? LoadHooks(Type slots)
    {
        try { return InstallHooks(slots); }
        catch (TargetInvocationException ex) when (ex.InnerException is not null) { return Describe(ex.InnerException); }
        catch (Exception ex) { return Describe(ex); }
    }

    private static string Describe(Exception ex) =>
        ex.GetType().Name == "ConfigurationException" ? ex.Message : $"the hooks could not be installed: {ex.GetType().Name}: {ex.Message}";

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static string? CheckWovenAssembly(out Type? hooks, out string location, bool launched)
    {
        var sockets = typeof(System.Net.Sockets.Socket).Assembly;
        location = LoadedFrom(sockets, out bool bundled);
        hooks = sockets.GetType(HookContract.FullTypeName);
        if (hooks is null)
            return $"the woven System.Net.Sockets was not loaded (the app loaded {(bundled ? "its own copy, from inside its single-file bundle" : location)}). " +
                   "A self-contained app (single-file or not) started other than by `sockshim run` itself (by another program under it, say), " +
                   "or a changed DOTNET_ADDITIONAL_DEPS/DOTNET_SHARED_STORE, bypasses the woven copy: start that app with `sockshim run`, " +
                   "which gives a self-contained app a copy with its own System.Net.Sockets woven.";
        return CheckIdentity(location, bundled, Literal(hooks, HookContract.SourceRuntimeVersion), Literal(hooks, HookContract.SourceFileLength),
            Literal(hooks, HookContract.SourceFileTime), Literal(hooks, HookContract.SourceMvid));
    }

    /// <summary>The woven copy was made from this very runtime's System.Net.Sockets.dll: same
    /// version, and the file still as long and as old as when it was woven.</summary>
    private static string? CheckIdentity(string location, bool bundled, string wovenFrom, string sourceLength, string sourceTime, string sourceMvid)
    {
        string running = Running;
        // Inside a single-file bundle nothing has a file of its own: the bundle the launcher made
        // (and checked, by the record) is the app's, rebundled with the copy woven from its own.
        if (bundled)
            return wovenFrom == running ? null
                : $"the bundled System.Net.Sockets was woven from runtime {wovenFrom} (MVID {sourceMvid}), but this app runs on {running}. Start it again with `sockshim run`, which makes its bundle again.";
        string coreLib = typeof(object).Assembly.Location;
        string stock = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(coreLib)!, "System.Net.Sockets.dll"));
        // A self-contained app started from its overlay: the woven copy sits in the runtime's own
        // directory, whose other entries link to the app's files; the file it was woven from is
        // the one beside the app's System.Private.CoreLib.
        if (stock == location && new FileInfo(coreLib).LinkTarget is { } appCoreLib && Path.IsPathRooted(appCoreLib))
            stock = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(appCoreLib)!, "System.Net.Sockets.dll"));
        // Its length and last write time (of the file it leads to, links followed, as StampIdentity
        // stamps them) as numbers, from one statx: FileInfo and number formatting cost the first
        // socket of every app about a millisecond.
        bool sameFile = WovenRecord.Stat(stock, followLinks: true) is { Regular: true } file
            && WovenRecord.Number(sourceLength, out ulong length) && file.Size == length
            && WovenRecord.Number(sourceTime, out ulong ticks) && (ulong)file.ModifiedTicks == ticks;
        if (wovenFrom != running || !sameFile)
            return $"the loaded System.Net.Sockets ({location}) was woven from runtime {wovenFrom} (MVID {sourceMvid}), " +
                   $"but this app runs on {running}{(wovenFrom == running ? ", whose System.Net.Sockets.dll has changed since" : "")}. Run `sockshim prepare` to weave this runtime.";
        return null;
    }

    /// <summary>Where <paramref name="assembly"/> was loaded from: its file, or for one inside a
    /// single-file bundle (no path of its own) the bundle, this process's executable.</summary>
    private static string LoadedFrom(Assembly assembly, out bool bundled)
    {
        bundled = assembly.Location.Length == 0;
        return bundled ? Environment.ProcessPath ?? "" : assembly.Location;
    }

    private static string Literal(Type hooks, string name) => hooks.GetField(name)?.GetRawConstantValue() as string ?? "?";

    private static string? InstallHooks(Type slots)
    {
        string dir = Path.GetDirectoryName(typeof(StartupHook).Assembly.Location)!;
        var context = new HookLoadContext(dir);
        var assembly = context.LoadFromAssemblyPath(Path.Combine(dir, "SockShim.Hooks.dll"));
        // Found by a loop over the exported types and called through a delegate: Assembly.GetType
        // parses the name and Invoke builds a stub, milliseconds of the first socket of a fresh process.
        Type? installer = null;
        foreach (var type in assembly.GetExportedTypes())
            if (type.FullName == "SockShim.Interceptor.Hooks.HookInstaller") installer = type;
        if (installer?.GetMethod("Install", [typeof(Type)]) is not { } install)
            throw new TypeLoadException($"{assembly.Location} has no SockShim.Interceptor.Hooks.HookInstaller.Install(Type)");
        install.CreateDelegate<Action<Type>>()(slots);
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

        private static readonly string? RuntimeDirectory = Path.GetDirectoryName(typeof(object).Assembly.Location) is { Length: > 0 } d ? d : null;

        protected override Assembly? Load(AssemblyName name)
        {
            string path = Path.Combine(directory, name.Name + ".dll");
            // In a single-file app the framework is inside the bundle, with no directory to look
            // in (nor a host to resolve a deps file with): what SockShim does not carry beside
            // itself is the framework's, from the default context.
            if (RuntimeDirectory is null) return (File.Exists(path) ? path : RidSpecific(name)) is { } found ? LoadFromAssemblyPath(found) : null;
            if (IsFramework(name)) return null;
            if (!File.Exists(path))
            {
                _resolver ??= new AssemblyDependencyResolver(Path.Combine(directory, "SockShim.Interceptor.dll"));
                path = _resolver.ResolveAssemblyToPath(name) ?? "";
            }
            return path.Length > 0 ? LoadFromAssemblyPath(path) : null;
        }

        /// <summary>A build output's RID-specific dependency (runtimes/RID/lib/TFM/, as the deps
        /// file would name it), for a single-file app, where no resolver can read the deps file.</summary>
        private string? RidSpecific(AssemblyName name)
        {
            foreach (var rid in (string[])[System.Runtime.InteropServices.RuntimeInformation.RuntimeIdentifier, "linux-x64", "linux", "unix"])
            {
                string lib = Path.Combine(directory, "runtimes", rid, "lib");
                if (!Directory.Exists(lib)) continue;
                foreach (var tfm in Directory.GetDirectories(lib).Order(StringComparer.Ordinal).Reverse())
                    if (Path.Combine(tfm, name.Name + ".dll") is var candidate && File.Exists(candidate)) return candidate;
            }
            return null;
        }

        private static bool IsFramework(AssemblyName name) => File.Exists(Path.Combine(RuntimeDirectory!, name.Name + ".dll"));
    }
}
