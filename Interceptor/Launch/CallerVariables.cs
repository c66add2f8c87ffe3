namespace SockShim.Interceptor.Launch;

/// <summary>
/// The caller's variables that the .NET host and runtime act on as a process starts: startup
/// hooks, additional deps and shared stores, profilers, dump paths and every other runtime knob
/// (DOTNET_*, COMPlus_*, CORECLR_*). SockShim's own managed tool must start without them: root's
/// environment may carry another account's (sudo -E), and a startup hook or profiler in it would
/// run that account's code in root's SockShim. The launcher (and the clone's script) hand them
/// over under another name; the tool, once running, puts them back, so the app it starts gets
/// them as the caller set them. DOTNET_ROOT* stay: the tool reads them as data (which runtimes
/// to weave), and `dotnet tool.dll` itself ignores them.
/// </summary>
public static class CallerVariables
{
    /// <summary>A variable handed over is named this, then its own name.</summary>
    public const string Prefix = "SOCKSHIM_CALLER_";

    public static bool ActsAtStart(string name) =>
        (name.StartsWith("DOTNET_", StringComparison.OrdinalIgnoreCase) || name.StartsWith("COMPlus_", StringComparison.OrdinalIgnoreCase) || name.StartsWith("CORECLR_", StringComparison.OrdinalIgnoreCase))
        && !name.StartsWith("DOTNET_ROOT", StringComparison.OrdinalIgnoreCase);

    /// <summary>For the launcher: the changes to the environment the managed tool starts with.</summary>
    public static Dictionary<string, string?> HandedOver()
    {
        var changes = new Dictionary<string, string?>();
        foreach (System.Collections.DictionaryEntry e in Environment.GetEnvironmentVariables())
        {
            if (e.Key is not string name || !ActsAtStart(name)) continue;
            changes[name] = null;
            changes[Prefix + name] = e.Value as string ?? "";
        }
        return changes;
    }

    /// <summary>For the managed tool, first thing: the handed-over variables back under their own
    /// names (in this process's environment, which the processes it starts inherit).</summary>
    public static void Restore()
    {
        foreach (System.Collections.DictionaryEntry e in Environment.GetEnvironmentVariables())
        {
            if (e.Key is not string name || !name.StartsWith(Prefix, StringComparison.Ordinal) || !ActsAtStart(name[Prefix.Length..])) continue;
            Environment.SetEnvironmentVariable(name[Prefix.Length..], e.Value as string);
            Environment.SetEnvironmentVariable(name, null);
        }
    }
}
