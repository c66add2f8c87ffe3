using System.Text.Json.Nodes;
using SockShim.Interceptor.Launch;

namespace SockShim.Interceptor.Store;

/// <summary>
/// A trimmed self-contained app (PublishTrimmed) is started with its own code on the installed
/// runtime of its version, where the woven System.Net.Sockets and the startup hook work as for
/// any framework-dependent app. Its own trimmed framework cannot serve: trimming compiles the
/// startup hook off, and keeps of the framework only what the app calls, not what SockShim's
/// hooks call. The overlay holds the app's files without its framework's (the deps.json's
/// runtime pack), a framework-dependent runtimeconfig naming the installed version, and the
/// app's assemblies completed for the full framework (<see cref="WovenStore.Rewriter"/>: the
/// trimmer also removed, from the app's own types, interface methods nothing called).
/// </summary>
public sealed partial class AppOverlay
{
    /// <summary>A deps.json of a large app is some hundreds of kB: a bound on what the app's owner makes root read.</summary>
    private const int MaxJsonBytes = 16 << 20;

    private static AppOverlay Rehosted(WovenStore store, string parent, DeploymentCheck.SelfContainedApp app, Action<string>? progress)
    {
        string appDirectory = Path.GetDirectoryName(app.Executable)!;
        string name = Path.GetFileName(app.Executable), entry = name + ".dll";
        string configFile = name + ".runtimeconfig.json", depsFile = name + ".deps.json";
        if (!File.Exists(Path.Combine(appDirectory, depsFile)))
            throw new AppRefusedException($"{app.Executable} is a trimmed self-contained app without its {depsFile}, which alone tells its framework's files from its own: publish it again as `dotnet publish` lays it out");
        // Read once: the overlay's runtimeconfig is made from this very object, whatever the
        // file says by then (runtimeOptions gone after the first check was a NullReferenceException).
        var (config, included) = Json(Path.Combine(appDirectory, configFile), root =>
            (root.AsObject(), (root["runtimeOptions"] as JsonObject ?? throw new InvalidDataException("no runtimeOptions object"))["includedFrameworks"] is JsonArray frameworks
                ? frameworks.Select(f => f?["name"]?.ToString()).ToList() : []));
        if (included.FirstOrDefault(f => f != "Microsoft.NETCore.App") is { } other)
            throw new AppRefusedException($"{app.Executable} is a trimmed self-contained app that carries {other}: SockShim runs a trimmed app's code on the installed runtime, and does so only for apps of Microsoft.NETCore.App alone. Publish it without PublishTrimmed");
        var runtime = RuntimeOf(app) ?? throw new AppRefusedException(
            $"{app.Executable} is trimmed (PublishTrimmed): its own framework lacks what SockShim's hooks need, so SockShim runs the app's code on the installed .NET runtime of its version, " +
            $"and no {Minor(app.RuntimeVersion)}.x is installed in {InstalledRuntimes.DotnetRoot()} (it carries {app.RuntimeVersion}). Install that runtime, or publish the app without PublishTrimmed");
        var woven = store.Verified.TryGetValue(runtime.Version, out var verified) ? verified : store.Prepare(runtime, progress);
        var (framework, assemblies) = Files(Path.Combine(appDirectory, depsFile), appDirectory);
        if (!assemblies.Contains(entry)) throw new AppRefusedException($"{Path.Combine(appDirectory, depsFile)} does not list {entry} as the app's own: publish it again");
        // Each is read whole and written out again into root's cache: bounded, as a bundle's are.
        var sizes = assemblies.Select(a => (Path: Path.Combine(appDirectory, a), new FileInfo(Path.Combine(appDirectory, a)).Length)).ToList();
        if (sizes.Sum(a => a.Length) is var total && total > MaxExtracted)
            throw new InvalidDataException($"the assemblies {Path.Combine(appDirectory, depsFile)} lists as the app's own are {total} bytes (the largest, {sizes.MaxBy(a => a.Length).Path}, " +
                                           $"{sizes.Max(a => a.Length)}), more than SockShim rewrites for one app ({MaxExtracted})");

        string[] keyed = [configFile, depsFile, .. assemblies.Order(StringComparer.Ordinal)];
        var key = Key($"rehosted {appDirectory} on {runtime.Version} {runtime.Directory}", appDirectory, keyed);
        string overlay = Path.Combine(parent, key.Name);
        AppOverlay On(AppOverlay made) => new(made.Executable, woven, made.FromCache) { RunsOn = runtime };
        if (RecordedSha(overlay) is { } recorded && Found(overlay, key, entry, entry, woven, recorded) is { } found) return On(found);

        var rewrite = store.RewriterOrHandOver($"the trimmed app {app.Executable} has no copy completed for runtime {runtime.Version} in {store.Root} yet");
        return On(Made(store, overlay, key, entry, entry, woven, progress, stage =>
        {
            foreach (var path in Directory.EnumerateFileSystemEntries(appDirectory))
            {
                string file = Path.GetFileName(path);
                if (file != name && file != configFile && file != depsFile && !framework.Contains(file) && !assemblies.Contains(file) && !IsOverlayFile(file))
                    File.CreateSymbolicLink(Path.Combine(stage, file), path);
            }
            foreach (var assembly in assemblies)
            {
                IReadOnlyList<string> added;
                // The app's owner's bytes: what Mono.Cecil cannot read is one line, not a stack trace.
                try { added = rewrite(Path.Combine(appDirectory, assembly), runtime.Directory, Path.Combine(stage, assembly)); }
                catch (Exception ex) when (ex is BadImageFormatException or InvalidOperationException or ArgumentException or NotSupportedException or EndOfStreamException)
                {
                    throw new InvalidDataException($"{Path.Combine(appDirectory, assembly)} could not be read as the app's assembly ({ex.GetType().Name}: {ex.Message}): publish the app again");
                }
                progress?.Invoke($"{assembly}: {added.Count} method{(added.Count == 1 ? "" : "s")} the trimmer removed given a body that throws");
            }
            TrustedPaths.WriteNew(Path.Combine(stage, configFile), FrameworkDependent(config, runtime.Version), 0b110_000_000);
        }));
    }

    /// <summary>The installed runtime a trimmed app of <paramref name="app"/>'s version runs on:
    /// that version, or the newest patch of its major.minor (patches add no API).</summary>
    private static InstalledRuntime? RuntimeOf(DeploymentCheck.SelfContainedApp app)
    {
        var same = InstalledRuntimes.Find().Where(r => Minor(r.Version) == Minor(app.RuntimeVersion)).ToList();
        return same.FirstOrDefault(r => r.Version == app.RuntimeVersion) ?? same.LastOrDefault();
    }

    private static string Minor(string version) => string.Join('.', version.Split('-')[0].Split('.').Take(2));

    /// <summary>The framework's files (the runtime pack's, by name) and the app's own managed
    /// assemblies beside it, from the app's deps.json.</summary>
    private static (HashSet<string> Framework, HashSet<string> Assemblies) Files(string depsFile, string appDirectory)
    {
        return Json(depsFile, deps => FilesOf(deps, depsFile, appDirectory));
    }

    private static (HashSet<string> Framework, HashSet<string> Assemblies) FilesOf(JsonNode deps, string depsFile, string appDirectory)
    {
        var libraries = deps["libraries"]?.AsObject() ?? [];
        HashSet<string> framework = new(StringComparer.Ordinal), assemblies = new(StringComparer.Ordinal);
        foreach (var (_, target) in deps["targets"]?.AsObject() ?? [])
            foreach (var (library, assets) in target?.AsObject() ?? [])
            {
                bool pack = libraries[library]?["type"]?.ToString() == "runtimepack";
                foreach (var kind in (string[])["runtime", "native"])
                    foreach (var (asset, _) in assets?[kind]?.AsObject() ?? [])
                    {
                        string file = Path.GetFileName(asset);
                        if (pack) framework.Add(file);
                        else if (kind == "runtime" && file.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) && File.Exists(Path.Combine(appDirectory, file))) assemblies.Add(file);
                    }
            }
        if (framework.Count == 0) throw new AppRefusedException($"{depsFile} names no runtime pack: not a self-contained app as `dotnet publish` lays one out");
        return (framework, assemblies);
    }

    /// <summary><paramref name="read"/> of the JSON file at <paramref name="path"/>, the app's
    /// owner's: text that is not JSON, or not of the shape `dotnet publish` writes, is one line.</summary>
    private static T Json<T>(string path, Func<JsonNode, T> read)
    {
        try { return read(DeploymentCheck.Parse(System.Text.Encoding.UTF8.GetString(TrustedPaths.ReadBounded(path, MaxJsonBytes))) ?? throw new InvalidDataException("null")); }
        catch (Exception ex) when (ex is System.Text.Json.JsonException or InvalidOperationException or InvalidDataException)
        {
            throw new InvalidDataException($"{path} is not as `dotnet publish` writes it ({ex.Message})");
        }
    }

    /// <summary>The app's runtimeconfig as a framework-dependent app's: the installed version
    /// exactly (its System.Net.Sockets is the one woven), the app's settings kept, startup hooks on.</summary>
    private static string FrameworkDependent(JsonObject config, string version)
    {
        var copy = config.DeepClone().AsObject();
        var options = copy["runtimeOptions"]!.AsObject();
        options.Remove("includedFrameworks");
        options["framework"] = new JsonObject { ["name"] = "Microsoft.NETCore.App", ["version"] = version };
        options["rollForward"] = "Disable";
        if (options["configProperties"] is not JsonObject properties) options["configProperties"] = properties = new JsonObject();
        properties[DeploymentCheck.HooksSwitch] = true;
        return copy.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true });
    }
}
