using System.Xml.Linq;
using SockShim.Interceptor.Store;
using SockShim.Stack.Configuration;
using SockShim.Stack.Interop;

namespace SockShim.Interceptor.Launch;

/// <summary>
/// How one command is started under SockShim: the woven store, the additional deps and the
/// startup hook, and the SOCKSHIM_* settings, scoped to that command. For `dotnet test` they go
/// into a runsettings file, so only the test host gets them, not the SDK and MSBuild.
/// </summary>
public sealed class LaunchPlan
{
    /// <summary>Wrapping an unmodified app is for giving its sockets addresses: mode all unless
    /// --mode or SOCKSHIM_MODE says otherwise.</summary>
    public static Dictionary<string, string?> WithRunDefaults(Dictionary<string, string?> given)
    {
        if (!given.ContainsKey(Stack.Configuration.SettingsLoader.ModeKey) && System.Environment.GetEnvironmentVariable("SOCKSHIM_MODE") is null)
            given[Stack.Configuration.SettingsLoader.ModeKey] = "all";
        return given;
    }

    /// <summary>The settings `run` and `env` start an app with, checked before it starts: a bad
    /// setting, an untrusted configuration file or state directory stops here (exit 2), not at
    /// the app's first socket. The app is then told the configuration file and the state
    /// directory by the paths the checks resolved, so it reads what was checked, wherever a link
    /// on the way leads by then.</summary>
    public static void CheckSettings(Dictionary<string, string?> given)
    {
        var spec = Stack.Configuration.SettingsLoader.Load(given, null, out var file);
        if (file is not null) given[Stack.Configuration.SettingsLoader.ConfigKey] = file.Path;
        if (spec.Pools.Any(p => p is Stack.Configuration.LocalPoolSpec))
            given[Stack.Configuration.SettingsLoader.StateDirKey] = Stack.Claims.HostFiles.CheckBeforeUse(spec.StateDirectory);
    }

    public IReadOnlyList<string> Command { get; private set; } = [];
    /// <summary>The file to exec for <see cref="Command"/>, when not the one its first word names.</summary>
    public string? ExecutablePath { get; private set; }
    /// <summary>Variables to set (null: remove) in the child's environment.</summary>
    public Dictionary<string, string?> Environment { get; } = new();
    public Dictionary<string, string> HookVariables { get; } = new();
    /// <summary>Started without the startup hook: the woven copy wires itself (see <see cref="HooklessProof"/>).</summary>
    public bool WithoutHook { get; private set; }
    /// <summary>Why the startup hook stays, when it does.</summary>
    public string? HookReason { get; private set; }
    private string? _tempFile;
    /// <summary>The copy of a self-contained app it is started from, or null.</summary>
    public AppOverlay? Overlay { get; private set; }
    /// <summary>The copy of a framework-dependent apphost it is started from without the startup hook, or null.</summary>
    public string? ApphostOverlay { get; private set; }

    /// <summary>Weaves (or finds cached) every installed runtime's System.Net.Sockets before a
    /// launch; a warning (IL-only, no crossgen) is told once, when the copy is first made.</summary>
    public static void Prepare(WovenStore store, Action<string>? progress, Action<string> warn)
    {
        foreach (var prepared in store.PrepareAll(line => progress?.Invoke("sockshim: " + line)))
            if (prepared.Warning is not null && !prepared.FromCache) warn("sockshim: warning: " + prepared.Warning);
    }

    /// <summary>The start info of <paramref name="command"/> with <paramref name="environment"/>
    /// applied (null removes a variable), for this plan's command or any other.</summary>
    public static System.Diagnostics.ProcessStartInfo StartInfo(IReadOnlyList<string> command, IReadOnlyDictionary<string, string?> environment)
    {
        var psi = new System.Diagnostics.ProcessStartInfo(command[0]) { UseShellExecute = false };
        foreach (var a in command.Skip(1)) psi.ArgumentList.Add(a);
        foreach (var (k, v) in environment)
        {
            if (v is null) psi.Environment.Remove(k);
            else psi.Environment[k] = v;
        }
        return psi;
    }

    public static string StartupHookPath(string toolDirectory) => Path.Combine(toolDirectory, "SockShim.StartupHook.dll");

    public static LaunchPlan For(IReadOnlyList<string> command, IReadOnlyDictionary<string, string?> settings, WovenStore store, string toolDirectory, bool verbose = false, bool launched = true, bool tryWithoutHook = false, Action<string>? progress = null)
    {
        CheckToolDirectory(toolDirectory);
        var plan = new LaunchPlan { Command = command.ToList() };
        var hook = plan.HookVariables;
        // A self-contained app carries its own runtime, which the store cannot reach: it is
        // started from its overlay in the cache instead, with its own System.Net.Sockets woven.
        var selfContained = launched ? DeploymentCheck.SelfContained(command) : null; // `env` names no app
        WovenStore.Prepared? own = null;
        if (selfContained is not null)
        {
            var overlay = AppOverlay.For(store, selfContained, progress);
            // A trimmed app's code is started on the installed runtime by its own `dotnet`: the
            // installation the runtime was found in by its resolved path (never DOTNET_ROOT's text,
            // which may lead through another account's link), and as root one root owns alone.
            string[] start = overlay.RunsOn is { } runtime ? [Muxer(runtime), overlay.Executable] : [overlay.Executable];
            // What starts is the overlay: its own runtimeconfig copy is what the host reads.
            if (DeploymentCheck.Problem(start) is { } changed) throw new AppRefusedException(changed);
            plan.Command = [.. start, .. command.Skip(1)];
            plan.Overlay = overlay;
            if (overlay.RunsOn is null) own = overlay.Sockets;
        }
        if (own is null)
        {
            hook["DOTNET_SHARED_STORE"] = Prepend(store.StoreDirectory, "DOTNET_SHARED_STORE");
            hook["DOTNET_ADDITIONAL_DEPS"] = Prepend(store.DepsDirectory, "DOTNET_ADDITIONAL_DEPS");
        }
        // Where the woven copy is proved to be the one loaded, it wires itself at the first socket
        // and the app starts from a copy of its runtimeconfig that turns startup hooks off, so it
        // pays none; elsewhere the hook checks at start. DOTNET_STARTUP_HOOKS is set either way:
        // the processes the app starts inherit it, and nothing proves what they load.
        HooklessProof.Proof? proof = null;
        plan.HookReason = tryWithoutHook ? HooklessProof.WhyNot(command, store, out proof) : "asked for with --startup-hook";
        if (proof is not null)
        {
            // The app by the real path that was judged, not the path as given; started from the
            // texts that were judged, with startup hooks off.
            try
            {
                if (proof.Apphost is null) plan.Command = [command[0], "exec", "--runtimeconfig", HooklessProof.WithoutStartupHooks(store, proof.App, proof.RuntimeConfig), proof.App, .. command.Skip(2)];
                else plan.Command = [plan.ApphostOverlay = AppOverlay.ForApphost(store, proof, progress), .. command.Skip(1)];
                // What was proved is what starts: the muxer by its real path (its name is kept
                // as the process's), the apphost's installation by the real path its variable led
                // to (a link re-pointed between the proof and the exec led the host elsewhere:
                // the eighth review).
                plan.ExecutablePath = proof.Muxer;
                if (proof.RootVariable is not null) plan.Environment[proof.RootVariable] = proof.Installation;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException or System.Text.Json.JsonException or Stack.Claims.UntrustedStateException)
            {
                plan.HookReason = $"the {(proof.Apphost is null ? "runtimeconfig copy" : "apphost's overlay")} without startup hooks cannot be kept: {ex.Message}";
                plan.ApphostOverlay = plan.ExecutablePath = null;
            }
        }
        plan.WithoutHook = plan.HookReason is null;
        if (plan.WithoutHook) hook[Contract.HookContract.WireVariable] = StartupHookPath(toolDirectory);
        hook["DOTNET_STARTUP_HOOKS"] = Prepend(StartupHookPath(toolDirectory), "DOTNET_STARTUP_HOOKS");
        foreach (var (version, prepared) in store.Verified)
            hook[Contract.HookContract.WovenRecordVariable(version)] = $"{prepared.Identity}:{prepared.AssemblyPath}";
        if (own is not null) hook[Contract.HookContract.WovenRecordVariable(own.Runtime.Version)] = $"{own.Identity}:{own.AssemblyPath}";
        foreach (var (key, value) in settings)
        {
            if (value is null) continue;
            hook[SettingsLoader.EnvironmentPrefix + key.ToUpperInvariant()] = key == SettingsLoader.ConfigKey ? Path.GetFullPath(value) : value;
        }

        if (verbose) hook["SOCKSHIM_LOG"] = "debug";
        // As root, the app's host too reads serviced assets from the tool's directory rather than
        // under the working directory (the ninth review: another account's System.Private.CoreLib
        // planted there reached root's app), unless the caller names its own. Its breadcrumbs only
        // when the working directory has that folder (a link there would be followed): naming one
        // always starts the host's breadcrumb thread, which every exit then waits for.
        if (TrustedPaths.AsRoot)
            foreach (var (name, value) in CallerVariables.HostDirectories(toolDirectory))
                if (System.Environment.GetEnvironmentVariable(name) is not { Length: > 0 } && (name != CallerVariables.Breadcrumbs || Path.Exists(CallerVariables.RelativeBreadcrumbs)))
                    plan.Environment[name] = value;
        if (launched) hook[Contract.HookContract.LauncherVariable] = "run";

        if (IsDotnetVerb(command, "test"))
        {
            if (command.Any(a => a is "--settings" or "-s" || a.StartsWith("--settings:")))
                throw new ArgumentException("sockshim run passes its variables to `dotnet test` in a runsettings file of its own; remove --settings, or run the test host under `sockshim run` another way");
            // In this account's private directory, never a shared one; created, not followed.
            plan._tempFile = Path.Combine(store.PrivateDirectory, $"sockshim-{System.Environment.ProcessId}-{Guid.NewGuid():N}.runsettings");
            TrustedPaths.WriteNew(plan._tempFile, RunSettings(hook), 0b110_000_000);
            plan.Command = [.. command, "--settings", plan._tempFile];
        }
        else
        {
            foreach (var (k, v) in hook) plan.Environment[k] = v;
            // An inherited wiring variable (a nested launch) would wire a second time after the hook.
            if (!plan.WithoutHook) plan.Environment[Contract.HookContract.WireVariable] = null;
            if (IsDotnetVerb(command, "run") || IsDotnetVerb(command, "build"))
            {
                // The build half of `dotnet run` must not leave long-lived build servers behind
                // that carry the hook into later, unrelated builds.
                plan.Environment["MSBUILDDISABLENODEREUSE"] = "1";
                plan.Environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
                plan.Environment["UseSharedCompilation"] = "false";
            }
        }
        return plan;
    }

    /// <summary>As root, the hooks loaded into apps must come from a directory that root owns
    /// and no other account can write, nor any directory above it; so must everything in it
    /// (the hooks' load context takes SockShim's dependencies from there, the tool's deps file
    /// says what the managed tool loads, the native launcher is exec'd).</summary>
    // Walked once a process: the launcher, `run` and the plan each ask, and what only root can
    // change cannot turn untrusted in between (a walk cost a millisecond of every launch).
    internal static void CheckToolDirectory(string toolDirectory)
    {
        if (!TrustedPaths.AsRoot) return;
        string directory = HostPaths.Canonical(toolDirectory) ?? toolDirectory;
        if (Volatile.Read(ref s_trustedToolDirectory) == directory) return;
        Untrusted? problem = HostPaths.Problem(directory) ?? TrustedPaths.EntriesProblem(directory);
        if (problem is null) Volatile.Write(ref s_trustedToolDirectory, directory);
        else
            throw new Stack.Claims.UntrustedStateException(
                $"tool directory {directory}: {problem}; as root SockShim loads its hooks into apps only from files that root owns and no other account can write, " +
                "nor any directory above them: clone or install SockShim as root (for example `sudo git clone <repo> /opt/sockshim`, then /opt/sockshim/sockshim), or run it as that user");
    }

    private static string? s_trustedToolDirectory;

    private static string Muxer(InstalledRuntime runtime)
    {
        string muxer = Path.GetFullPath(Path.Combine(runtime.Directory, "..", "..", "..", "dotnet"));
        if (TrustedPaths.AsRoot && (HostPaths.Canonical(muxer) is not { } canonical ? new Untrusted(muxer, "missing") : HostPaths.Problem(canonical, leafIsFile: true)) is { } problem)
            throw new Stack.Claims.UntrustedStateException(
                $"the dotnet of the installation {Path.GetDirectoryName(muxer)}: {problem}; as root SockShim starts a trimmed app's code only with a dotnet that root owns and no other account can write, nor any directory above it");
        return muxer;
    }

    private static string Prepend(string value, string variable) =>
        System.Environment.GetEnvironmentVariable(variable) is { Length: > 0 } existing ? $"{value}{Path.PathSeparator}{existing}" : value;

    private static bool IsDotnetVerb(IReadOnlyList<string> command, string verb) =>
        command.Count >= 2 && Path.GetFileName(command[0]) == "dotnet" && command[1] == verb;

    private static string RunSettings(Dictionary<string, string> variables) =>
        new XDocument(new XElement("RunSettings",
            new XElement("RunConfiguration",
                new XElement("EnvironmentVariables", variables.Select(v => new XElement(v.Key, v.Value)))))).ToString();

    public IEnumerable<string> Describe()
    {
        if (Overlay is { RunsOn: { } runtime })
            yield return $"trimmed self-contained app: its code started from the overlay {Path.GetDirectoryName(Overlay.Executable)}{(Overlay.FromCache ? " (cached)" : "")} " +
                         $"on the installed runtime {runtime.Version} (its own trimmed framework lacks what SockShim's hooks need)";
        else if (Overlay is not null)
            yield return $"self-contained app: started from its overlay {Path.GetDirectoryName(Overlay.Executable)}{(Overlay.FromCache ? " (cached)" : "")}, " +
                         $"its own runtime {Overlay.Sockets.Runtime.Version}'s System.Net.Sockets woven";
        if (ApphostOverlay is not null)
            yield return $"apphost: started from its overlay {Path.GetDirectoryName(ApphostOverlay)} (its runtimeconfig with startup hooks off; the rest of its folder linked)";
        yield return "command: " + string.Join(' ', Command);
        if (ExecutablePath is not null) yield return $"exec: {ExecutablePath} (the muxer proved, by its real path)";
        yield return WithoutHook ? "start: no startup hook in the app (the woven System.Net.Sockets is proved to be the one loaded; it wires itself at the first socket; the processes it starts keep the hook)"
            : $"start: with the startup hook ({HookReason})";
        foreach (var (k, v) in HookVariables) yield return $"{k}={v}";
        if (_tempFile is not null) yield return $"(in runsettings {_tempFile})";
    }

    /// <summary>Whether something of the launch is left to remove after the command ends (the
    /// runsettings file of `dotnet test`).</summary>
    public bool NeedsCleanup => _tempFile is not null;

    public void Cleanup()
    {
        if (_tempFile is not null) File.Delete(_tempFile);
    }
}
