namespace SockShim.Interceptor.Launch;

/// <summary>
/// The caller's environment, kept from the start of SockShim's own managed tool. Root's may carry
/// another account's (sudo -E), and the .NET host and runtime and the native libraries under
/// them act on variables as a process starts: startup hooks and profilers (DOTNET_STARTUP_HOOKS,
/// CORECLR_PROFILER_PATH), OpenSSL's configuration (OPENSSL_CONF names a module it loads), the
/// host's trace file (COREHOST_TRACEFILE, appended to as root), the runtime's debugger pipes
/// (made in TMPDIR). So only what starting needs and SockShim reads as data stays (PATH, HOME,
/// the user's and locale's names, TERM, SOCKSHIM_*, DOTNET_ROOT*); every other variable is handed
/// over under another name, and as root the tool starts with DOTNET_EnableDiagnostics=0 besides
/// (no debugger pipe or diagnostic socket at all). First thing, the tool puts the caller's variables
/// back in its own environment, for the app and processes it starts: .NET keeps that copy apart
/// from the process's native one, which is all OpenSSL and the runtime ever read.
/// </summary>
public static class CallerVariables
{
    /// <summary>A variable handed over is named this, then its own name.</summary>
    public const string Prefix = "SOCKSHIM_CALLER_";

    private const string Diagnostics = "DOTNET_EnableDiagnostics";

    /// <summary>Where the .NET host looks for serviced package assets before an app's own folder.
    /// Unset, or naming a directory that is not there, the host takes `opt/coreservicing`
    /// relative to the working directory (seen in its trace): root running the managed tool from
    /// a directory another account can write (/tmp, a shared project folder) loaded that
    /// account's opt/coreservicing/pkgs/system.commandline/2.0.0/lib/net8.0/System.CommandLine.dll
    /// (the eighth review). The tool starts with it naming its own directory (root's alone, as
    /// root: <see cref="LaunchPlan"/>.CheckToolDirectory), which holds no pkgs folder.</summary>
    public const string Servicing = "CORE_SERVICING";

    /// <summary>Where the host writes a file for each serviceable package an app uses: unset, or
    /// naming no directory, `opt/corebreadcrumbs` relative to the working directory, followed if
    /// a link (the ninth review: another account's link there had root's `prepare` create 50
    /// files in a directory of that account's choosing).</summary>
    public const string Breadcrumbs = "CORE_BREADCRUMBS";

    /// <summary>Where the host writes breadcrumbs when <see cref="Breadcrumbs"/> names no directory.</summary>
    public const string RelativeBreadcrumbs = "opt/corebreadcrumbs";

    /// <summary>The host's two directories that otherwise follow the working directory, as SockShim's
    /// own processes take them: the tool directory, and its breadcrumbs folder (made with the build).</summary>
    public static IEnumerable<KeyValuePair<string, string>> HostDirectories(string toolDirectory)
    {
        yield return new(Servicing, toolDirectory);
        string crumbs = Path.Combine(toolDirectory, "breadcrumbs");
        yield return new(Breadcrumbs, Directory.Exists(crumbs) ? crumbs : toolDirectory);
    }

    /// <summary>Whether SockShim's tool starts with the caller's <paramref name="name"/> as it is.</summary>
    public static bool Kept(string name) =>
        name is "PATH" or "HOME" or "USER" or "LOGNAME" or "LANG" or "LANGUAGE" or "TERM"
        || name.StartsWith("LC_", StringComparison.Ordinal) || name.StartsWith("SOCKSHIM_", StringComparison.Ordinal) || name.StartsWith("DOTNET_ROOT", StringComparison.Ordinal);

    /// <summary>A variable the .NET host or runtime acts on as a process starts (DOTNET_*, COMPlus_*,
    /// CORECLR_*; DOTNET_ROOT* is read as data): never passed to the .NET tools SockShim runs
    /// itself (crossgen2, the restore that fetches it), whoever the caller is.</summary>
    public static bool RuntimeKnob(string name) =>
        (name.StartsWith("DOTNET_", StringComparison.OrdinalIgnoreCase) || name.StartsWith("COMPlus_", StringComparison.OrdinalIgnoreCase) || name.StartsWith("CORECLR_", StringComparison.OrdinalIgnoreCase))
        && !name.StartsWith("DOTNET_ROOT", StringComparison.OrdinalIgnoreCase);

    /// <summary>For the launcher: the changes to the environment the managed tool starts with.</summary>
    public static Dictionary<string, string?> HandedOver()
    {
        var changes = new Dictionary<string, string?>();
        var environment = Environment.GetEnvironmentVariables();
        // One the caller set under this prefix itself is dropped: the tool would put it back under
        // its own name, and sudo, which removes LD_PRELOAD from root's environment, would not
        // have removed SOCKSHIM_CALLER_LD_PRELOAD.
        foreach (var key in environment.Keys)
            if (key is string name && name.StartsWith(Prefix, StringComparison.Ordinal)) changes[name] = null;
        foreach (System.Collections.DictionaryEntry e in environment)
        {
            if (e.Key is not string name || Kept(name)) continue;
            changes[name] = null;
            changes[Prefix + name] = e.Value as string ?? "";
        }
        // As root no debugger pipe or diagnostic socket at all (the caller's own setting, if any,
        // is handed over above); an ordinary account's tool keeps them for dotnet-counters and
        // dotnet-dump, as any of its .NET processes.
        if (Store.TrustedPaths.AsRoot) changes[Diagnostics] = "0";
        foreach (var (name, value) in HostDirectories(AppContext.BaseDirectory)) changes[name] = value;
        return changes;
    }

    /// <summary>For the managed tool, first thing: the handed-over variables back under their own
    /// names, and its own DOTNET_EnableDiagnostics gone (the app gets the caller's, if any).</summary>
    public static void Restore()
    {
        Environment.SetEnvironmentVariable(Diagnostics, null);
        // The tool's own; the caller's, if any, come back below.
        Environment.SetEnvironmentVariable(Servicing, null);
        Environment.SetEnvironmentVariable(Breadcrumbs, null);
        foreach (System.Collections.DictionaryEntry e in Environment.GetEnvironmentVariables())
        {
            if (e.Key is not string name || !name.StartsWith(Prefix, StringComparison.Ordinal)) continue;
            string own = name[Prefix.Length..];
            // A SockShim variable is never one of the caller's handed over: those stay as they are.
            if (own.Length > 0 && !own.StartsWith("SOCKSHIM_", StringComparison.Ordinal)) Environment.SetEnvironmentVariable(own, e.Value as string);
            Environment.SetEnvironmentVariable(name, null);
        }
    }
}
