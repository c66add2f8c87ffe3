using System.Text.Json;
using SockShim.Interceptor.Store;

namespace SockShim.Interceptor.Launch;

/// <summary>
/// Whether `sockshim run` can start a command without the startup hook: only where it proves,
/// from the command's files and the environment, that the app will load the woven
/// System.Net.Sockets, so no check inside the app is needed to refuse a bypass (the woven copy
/// then wires itself at the first socket, see HookContract.WireVariable). The proof, for a
/// direct launch (`dotnet app.dll`, or an apphost with its app.dll beside it):
/// <list type="bullet">
/// <item>the app is framework-dependent (its runtimeconfig.json names frameworks, not included ones);</item>
/// <item>every Microsoft.NETCore.App version of every installation the host may choose is one the
///   store has verified, so whatever version it rolls forward to is woven (roll-forward settings
///   need no reading: no candidate is left unwoven);</item>
/// <item>nothing of the app outranks the framework's copy: no System.Net.Sockets.dll beside it,
///   none in its deps.json;</item>
/// <item>no DOTNET_ADDITIONAL_DEPS or DOTNET_SHARED_STORE of the user's is combined with the store's.</item>
/// </list>
/// Anything else (SDK commands such as `dotnet run` and `dotnet test`, `dotnet exec` with options,
/// scripts, single-file and self-contained apps) keeps the startup hook, which checks at start.
/// </summary>
public static class HooklessProof
{
    /// <summary>Null when proved; otherwise why not, in words (said with --verbose). What cannot
    /// be read is not proved: the startup hook stays.</summary>
    public static string? WhyNot(IReadOnlyList<string> command, WovenStore store)
    {
        try { return Prove(command, store); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return $"the command's files cannot be read: {ex.Message}";
        }
    }

    private static string? Prove(IReadOnlyList<string> command, WovenStore store)
    {
        if (command.Count < 1) return "no command";
        string path = Environment.GetEnvironmentVariable("PATH") ?? "";
        string app;
        IReadOnlyList<string> roots;
        if (Path.GetFileName(command[0]) == "dotnet")
        {
            if (command.Count < 2 || !command[1].EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
                return "not `dotnet app.dll` (an SDK command, or `dotnet exec` with options, decides itself what the app loads)";
            if (Exec.Resolve(command[0], path) is not { } muxer) return $"{command[0]} is not found";
            app = Path.GetFullPath(command[1]);
            // The muxer's own installation, where it finds hostfxr and the frameworks.
            roots = [Path.GetDirectoryName(RealPath(muxer))!];
        }
        else
        {
            if (Exec.Resolve(command[0], path) is not { } host || !File.Exists(host)) return $"{command[0]} is not found";
            // The apphost finds its app beside its own real path (/proc/self/exe).
            string real = RealPath(host);
            app = real + ".dll";
            if (!File.Exists(app)) return $"{real} is not an apphost with its app beside it (a script, a single-file app or a native program)";
            if (File.Exists(Path.Combine(Path.GetDirectoryName(real)!, "libhostfxr.so"))) return "a self-contained app (its own hostfxr beside it)";
            roots = ApphostRoots();
        }
        string dir = Path.GetDirectoryName(app)!;
        if ((User("DOTNET_ADDITIONAL_DEPS") ?? User("DOTNET_SHARED_STORE")) is { } given) return $"the environment already sets {given}, which the host combines with the store's";
        if (File.Exists(Path.Combine(dir, "System.Net.Sockets.dll"))) return $"{dir} has a System.Net.Sockets.dll of its own";
        if (Problem(Path.ChangeExtension(app, ".runtimeconfig.json"), Path.ChangeExtension(app, ".deps.json")) is { } problem) return problem;
        foreach (var root in roots)
            foreach (var runtime in InstalledRuntimes.Find(root))
                if (!store.Verified.TryGetValue(runtime.Version, out var prepared) || !SameRuntime(prepared, runtime))
                    return $"runtime {runtime.Version} in {root} has no woven copy checked for this launch";
        return null;

        static string? User(string variable) => Environment.GetEnvironmentVariable(variable) is { Length: > 0 } ? variable : null;
    }

    // The store's verified copy was woven from this very installation's runtime of that version.
    private static bool SameRuntime(WovenStore.Prepared prepared, InstalledRuntime runtime) =>
        string.Equals(Path.GetFullPath(prepared.Runtime.Directory), Path.GetFullPath(runtime.Directory), StringComparison.Ordinal);

    private static string? Problem(string runtimeConfig, string deps)
    {
        try
        {
            using (var config = JsonDocument.Parse(File.ReadAllText(runtimeConfig)))
            {
                if (!config.RootElement.TryGetProperty("runtimeOptions", out var options)) return $"{runtimeConfig} has no runtimeOptions";
                if (options.TryGetProperty("includedFrameworks", out _)) return "a self-contained app (its runtimeconfig.json includes its frameworks)";
                if (!options.TryGetProperty("framework", out _) && !options.TryGetProperty("frameworks", out _)) return $"{runtimeConfig} names no framework";
            }
            // An app-local System.Net.Sockets (a package's runtime asset) would outrank the framework's.
            if (File.Exists(deps) && File.ReadAllText(deps).Contains("System.Net.Sockets.dll", StringComparison.OrdinalIgnoreCase))
                return $"{deps} lists a System.Net.Sockets.dll of the app's own";
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException)
        {
            return $"{runtimeConfig} cannot be read: {ex.Message}";
        }
    }

    /// <summary>Every installation an apphost may use (hosting layer's order: DOTNET_ROOT_X64,
    /// DOTNET_ROOT, /etc/dotnet/install_location[_x64], the default /usr/share/dotnet), and the
    /// `dotnet` on PATH: all of them, since which one wins is not read here, and each must be
    /// woven throughout. An apphost built with an app-relative search (AppHostRelativeDotNet) is
    /// not seen here.</summary>
    private static IReadOnlyList<string> ApphostRoots()
    {
        var roots = new List<string>();
        foreach (var variable in new[] { "DOTNET_ROOT_X64", "DOTNET_ROOT" })
            if (Environment.GetEnvironmentVariable(variable) is { Length: > 0 } root) roots.Add(root);
        foreach (var file in new[] { "/etc/dotnet/install_location_x64", "/etc/dotnet/install_location" })
        {
            try { if (File.Exists(file) && File.ReadLines(file).FirstOrDefault()?.Trim() is { Length: > 0 } line) roots.Add(line); }
            catch (IOException) { }
        }
        roots.Add("/usr/share/dotnet");
        roots.Add("/usr/lib/dotnet");
        if (Exec.Resolve("dotnet", Environment.GetEnvironmentVariable("PATH")) is { } muxer) roots.Add(Path.GetDirectoryName(RealPath(muxer))!);
        return roots.Select(r => Directory.Exists(r) ? RealPath(r) : r).Distinct().ToList();
    }

    private static string RealPath(string path)
    {
        var info = new FileInfo(path);
        return info.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? Path.GetFullPath(path);
    }
}
