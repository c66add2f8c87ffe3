using System.Text.Json;
using System.Text.Json.Nodes;
using SockShim.Stack.Interop;

namespace SockShim.Interceptor.Launch;

/// <summary>
/// What `sockshim run` can tell from the files of the command before starting it. A
/// self-contained app (its runtime beside it, or bundled into one file) is found here and
/// started from its overlay (<see cref="Store.AppOverlay"/>); a trimmed one, its code on the
/// installed runtime. An app that would run unpatched without the startup hook ever saying so
/// (startup hooks switched off in a framework-dependent or single-file app; a Native AOT binary
/// with no IL to weave) is refused here, since no check inside such an app would run.
/// </summary>
public static class DeploymentCheck
{
    /// <summary>The startup hook's exit code for an app SockShim refused to start (the hook contract's).</summary>
    public const int RefusedExitCode = Contract.HookContract.RefusedExitCode;

    /// <summary>The runtimeconfig property that switches startup hooks off (PublishTrimmed, StartupHookSupport=false).</summary>
    internal const string HooksSwitch = "System.StartupHookProvider.IsSupported";

    /// <summary>Why <paramref name="command"/> cannot be served, as one line, or null when nothing
    /// in its files says so (including commands that are not a .NET app at all).</summary>
    public static string? Problem(IReadOnlyList<string> command)
    {
        if (command.Count == 0) return null;
        if (Path.GetFileName(command[0]) == "dotnet")
        {
            if (EntryAssembly(command) is not { } given) return null;
            // The host reads the files beside where the path leads, not beside a link to it (the ninth review).
            string dll = HostPaths.Canonical(given) ?? given;
            string config = Option(command, "--runtimeconfig") ?? Path.ChangeExtension(dll, ".runtimeconfig.json");
            return ShadowsHook(dll, Option(command, "--depsfile"), Option(command, "--additional-deps")) ?? HooksOff(config, folder: false);
        }
        if (Resolve(command[0]) is not { } file) return null;
        return Apphost(HostPaths.Canonical(file) ?? file);
    }

    /// <summary>SockShim's hook assembly, which the runtime loads by path into the app's default
    /// load context (DOTNET_STARTUP_HOOKS, and the woven copy's wiring by SOCKSHIM_WIRE): an app
    /// that brings an assembly of that name in its own list (its deps.json, or without one any
    /// file of its folder) has its own loaded instead, and runs unpatched with no check at all
    /// (the eighth review, with and without the startup hook).</summary>
    public const string HookAssembly = "SockShim.StartupHook";

    /// <summary>Why the app <paramref name="dll"/> (by real path) would replace SockShim's hook
    /// assembly with one of its own, or null: its deps file (<paramref name="depsFile"/> when given,
    /// `dotnet exec --depsfile`), without one any file of its folder, and every additional deps
    /// file the host reads for it (`--additional-deps`, DOTNET_ADDITIONAL_DEPS: files, or folders
    /// of them).</summary>
    internal static string? ShadowsHook(string dll, string? depsFile = null, string? additionalDeps = null)
    {
        try
        {
            string dir = Path.GetDirectoryName(Path.GetFullPath(dll))!, deps = depsFile ?? Path.ChangeExtension(dll, ".deps.json");
            string? carrier = File.Exists(deps) ? (Mentions(deps, HookAssembly) ? deps : null)
                : Directory.Exists(dir) && Directory.EnumerateFiles(dir).Any(f => IsAssemblyNamed(Path.GetFileName(f), HookAssembly)) ? dir : null;
            foreach (var extra in $"{additionalDeps}{Path.PathSeparator}{Environment.GetEnvironmentVariable("DOTNET_ADDITIONAL_DEPS")}".Split([Path.PathSeparator, ';'], StringSplitOptions.RemoveEmptyEntries))
                carrier ??= AdditionalDepsFiles(extra).FirstOrDefault(file => Mentions(file, HookAssembly));
            return carrier is not null
                ? $"{dll} brings an assembly named {HookAssembly} of its own ({carrier}), which the runtime would load in place of SockShim's hook: the app would run unpatched. " +
                  $"Remove it from the app (it is SockShim's, not the app's to carry)"
                : null;
        }
        catch (JsonException) { return null; } // not JSON: the host refuses to start it, and says why
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Unreadable is not "carries none": the host may read what SockShim could not.
            return $"{dll}'s deps files cannot be read ({ex.Message}), so SockShim cannot tell whether the app brings an assembly named {HookAssembly} of its own, " +
                   $"which would run in place of SockShim's hook. Make them readable regular files of at most {MaxConfigBytes} bytes, as `dotnet publish` writes them";
        }
    }

    /// <summary>The deps files an additional-deps entry gives the host: the file itself, or the
    /// *.deps.json files under a folder (its shared/FRAMEWORK/VERSION layout; at most 1,000).</summary>
    private static IEnumerable<string> AdditionalDepsFiles(string entry) =>
        File.Exists(entry) ? [entry]
        : Directory.Exists(entry) ? Directory.EnumerateFiles(entry, "*.deps.json", new EnumerationOptions { RecurseSubdirectories = true, MaxRecursionDepth = 4, IgnoreInaccessible = true }).Take(1000)
        : [];

    /// <summary>Whether a file name is an assembly of the simple name <paramref name="name"/> as the
    /// host lists a folder: .dll or .exe, also the .ni forms, in any case.</summary>
    internal static bool IsAssemblyNamed(string file, string name) =>
        AssemblyExtensions.Any(extension => file.Equals(name + extension, StringComparison.OrdinalIgnoreCase));

    private static readonly string[] AssemblyExtensions = [".dll", ".exe", ".ni.dll", ".ni.exe"];

    private static bool Mentions(string deps, string what)
    {
        using var document = JsonDocument.Parse(Store.TrustedPaths.ReadBounded(deps, MaxConfigBytes));
        return Mentions(document.RootElement, what);
    }

    /// <summary>Whether any name or string value of a parsed JSON document contains <paramref name="what"/> (escapes decoded).</summary>
    internal static bool Mentions(JsonElement e, string what) => e.ValueKind switch
    {
        JsonValueKind.Object => e.EnumerateObject().Any(p => p.Name.Contains(what, StringComparison.OrdinalIgnoreCase) || Mentions(p.Value, what)),
        JsonValueKind.Array => e.EnumerateArray().Any(v => Mentions(v, what)),
        JsonValueKind.String => e.GetString()!.Contains(what, StringComparison.OrdinalIgnoreCase),
        _ => false,
    };

    /// <summary>A self-contained app (its own runtime beside it, or bundled into one file):
    /// started through a copy of it in the cache with its own System.Net.Sockets woven.</summary>
    /// <remarks><paramref name="Trimmed"/>: its runtimeconfig switches startup hooks off, as
    /// PublishTrimmed does; its code is started on the installed runtime of its version.</remarks>
    public sealed record SelfContainedApp(string Executable, string RuntimeVersion, bool SingleFile, bool Trimmed = false);

    /// <summary>The self-contained app <paramref name="command"/> starts, by the real path of its
    /// executable (the host finds the app's files from it), or null for anything else.</summary>
    public static SelfContainedApp? SelfContained(IReadOnlyList<string> command)
    {
        if (command.Count == 0 || Path.GetFileName(command[0]) == "dotnet") return null;
        if (Resolve(command[0]) is not { } found || HostPaths.Canonical(found) is not { } file) return null;
        string runtimeConfig = file + ".runtimeconfig.json";
        try
        {
            if (File.Exists(runtimeConfig))
                return ReadConfig(runtimeConfig) is var text && RuntimeVersion(text) is { } version && File.Exists(file + ".dll")
                    ? new SelfContainedApp(file, version, SingleFile: false, Trimmed: SwitchesHooksOff(Parse(text)) == true) : null;
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            if (SingleFileBundle.ElfSections(stream) is not { } sections || SingleFileBundle.Read(stream, sections) is not { } bundle) return null;
            return bundle.RuntimeConfig(stream) is { } json && RuntimeVersion(json) is { } bundled ? new SelfContainedApp(file, bundled, SingleFile: true) : null;
        }
        catch (IOException) { return null; } // unreadable: starting it says why
        catch (InvalidDataException) { return null; } // a damaged bundle: Problem names it
        catch (Exception ex) when (ex is System.Text.Json.JsonException or InvalidOperationException) { return null; } // Problem names it
        catch (UnauthorizedAccessException) { return null; }
    }

    /// <summary>Far more than any runtimeconfig `dotnet publish` writes (a few kB), and a bound on
    /// what another account's file makes root read.</summary>
    public const int MaxConfigBytes = 1 << 20;

    /// <summary>A runtimeconfig's text, read without blocking on a FIFO and at most <see cref="MaxConfigBytes"/>.</summary>
    internal static string ReadConfig(string path) => System.Text.Encoding.UTF8.GetString(Store.TrustedPaths.ReadBounded(path, MaxConfigBytes));

    /// <summary>JSON as `dotnet publish` writes it, strictly: comments, text after the value and a
    /// name given twice are JsonException (the host reads the first two, and System.Text.Json
    /// threw ArgumentException at the first read of a name given twice).</summary>
    internal static JsonNode? Parse(string json) =>
        JsonNode.Parse(json, documentOptions: new System.Text.Json.JsonDocumentOptions { AllowDuplicateProperties = false });

    /// <summary>The Microsoft.NETCore.App version a self-contained app's runtimeconfig.json says
    /// it carries (includedFrameworks); null for a framework-dependent app or unreadable text.</summary>
    private static string? RuntimeVersion(string json)
    {
        try
        {
            if (Parse(json)?["runtimeOptions"]?["includedFrameworks"] is not JsonArray frameworks) return null;
            foreach (var framework in frameworks)
                if (framework?["name"]?.GetValueKind() == System.Text.Json.JsonValueKind.String && framework["name"]!.GetValue<string>() == "Microsoft.NETCore.App"
                    && framework["version"]?.GetValueKind() == System.Text.Json.JsonValueKind.String && framework["version"]!.GetValue<string>() is { } version
                    && Version.TryParse(version.Split('-')[0], out _) && !version.Contains('/') && !version.Contains(".."))
                    return version;
        }
        catch (System.Text.Json.JsonException) { }
        catch (InvalidOperationException) { }
        return null;
    }

    /// <summary>The app of `dotnet app.dll` or `dotnet exec [options] app.dll` (the muxer runs a
    /// managed .exe the same way: the ninth review's `dotnet App.exe` was never looked at); null for SDK verbs.</summary>
    private static string? EntryAssembly(IReadOnlyList<string> command)
    {
        if (command.Count < 2) return null;
        if (IsManaged(command[1])) return command[1];
        if (command[1] != "exec") return null;
        for (int i = 2; i < command.Count; i++)
        {
            if (IsManaged(command[i])) return command[i];
            if (command[i].StartsWith("--")) i++; // every exec option takes a value
        }
        return null;

        static bool IsManaged(string argument) => argument.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) || argument.EndsWith(".exe", StringComparison.OrdinalIgnoreCase);
    }

    // `dotnet exec --runtimeconfig FILE ...` (the file the host reads instead of the app's own),
    // `--depsfile FILE`, `--additional-deps LIST`: an option's value, or null.
    private static string? Option(IReadOnlyList<string> command, string option)
    {
        if (command.Count < 2 || command[1] != "exec") return null;
        for (int i = 2; i + 1 < command.Count && command[i].StartsWith("--"); i += 2)
            if (command[i] == option) return command[i + 1];
        return null;
    }

    // The file the exec will run (the same lookup as Exec's), as a full path, or null.
    private static string? Resolve(string name) =>
        Exec.Resolve(name, Environment.GetEnvironmentVariable("PATH")) is { } found && File.Exists(found) ? Path.GetFullPath(found) : null;

    private static string? Apphost(string file)
    {
        string runtimeConfig = file + ".runtimeconfig.json"; // an apphost's name is its app's, as built
        // Renamed since, it still starts the app written inside it, whose runtimeconfig may switch
        // startup hooks off (the seventh review: `run`, a renamed apphost, started its app with
        // no hook and no refusal): each app its file names is looked at too.
        // Each app once: the one it names is its own name's as built.
        foreach (var app in ApphostImage.NamedApps(file).Select(named => Path.Combine(Path.GetDirectoryName(file)!, named)).Append(file + ".dll").Distinct(StringComparer.Ordinal))
        {
            string config = Path.ChangeExtension(app, ".runtimeconfig.json");
            if (File.Exists(app) && ShadowsHook(app) is { } shadow) return shadow;
            if (config != runtimeConfig && File.Exists(config) && HooksOff(config, folder: true) is { } problem) return problem;
        }
        if (File.Exists(runtimeConfig)) return HooksOff(runtimeConfig, folder: true);

        try
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            if (SingleFileBundle.ElfSections(stream) is not { } sections) return null; // a script or other file: the startup hook still checks what it starts
            // Single-file: its runtimeconfig is inside the bundle.
            if (SingleFileBundle.Read(stream, sections) is { } bundle)
                return bundle.RuntimeConfig(stream) is { } json ? HooksOff($"{file} (its bundled runtimeconfig.json)", json, folder: false) : null;
            if (File.Exists(file + ".dll")) return null;
            if (sections.ContainsKey("__managedcode"))
                return $"{file} is a Native AOT app (an ELF binary with compiled managed code, no IL assembly beside it, no bundle): " +
                       "there is no IL of System.Net.Sockets to weave, so SockShim cannot give its sockets addresses. " +
                       "A later version will serve Native AOT apps; publish without PublishAot.";
        }
        catch (IOException) { return null; } // unreadable here (or truncated): starting it will say why
        catch (UnauthorizedAccessException) { return null; }
        catch (InvalidDataException ex)
        {
            // Not an IOException: without this, a forged header was a stack trace.
            return $"{file} is a damaged single-file bundle ({ex.Message}), which the .NET host would not start either: publish it again";
        }
        return null;
    }

    /// <summary>An app whose runtimeconfig switches startup hooks off: the hook that installs
    /// SockShim and refuses a bypass would never run. Served all the same: a trimmed
    /// self-contained app in a folder (<paramref name="folder"/>), whose code is started on the
    /// installed runtime (<see cref="Store.AppOverlay"/>).</summary>
    private static string? HooksOff(string runtimeConfig, bool folder)
    {
        // The host merges the development file beside it (X.runtimeconfig.dev.json), whose
        // configProperties switch startup hooks off as well (the ninth review).
        if (runtimeConfig.EndsWith(".json", StringComparison.OrdinalIgnoreCase) && !runtimeConfig.EndsWith(".dev.json", StringComparison.OrdinalIgnoreCase)
            && HooksOff(runtimeConfig[..^".json".Length] + ".dev.json", folder) is { } development)
            return development;
        // None at all (`dotnet lib.dll`): nothing switches startup hooks off; the host says the rest.
        if (!File.Exists(runtimeConfig) && new FileInfo(runtimeConfig).LinkTarget is null) return null;
        string json;
        // The host reads it: what SockShim cannot read could switch startup hooks off unseen.
        try { json = ReadConfig(runtimeConfig); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return $"{runtimeConfig} cannot be read ({ex.Message}), so SockShim cannot tell whether it switches startup hooks off ({HooksSwitch}), " +
                   $"without which the app would run unpatched. Make it a readable regular file of at most {MaxConfigBytes} bytes, as `dotnet publish` writes it";
        }
        return HooksOff(runtimeConfig, json, folder);
    }

    private static string? HooksOff(string runtimeConfig, string json, bool folder)
    {
        bool? switched;
        try { switched = SwitchesHooksOff(Parse(json)); }
        catch (Exception ex) when (ex is System.Text.Json.JsonException or InvalidOperationException)
        {
            // The host reads comments and ignores what follows the object: such a file (or one
            // with a name twice) said "hooks on" here, and a trimmed app started unpatched.
            return $"{runtimeConfig} is not plain JSON ({ex.Message}); the .NET host reads some such files (comments, text after the object), " +
                   $"and SockShim cannot tell whether it switches startup hooks off ({HooksSwitch}), without which the app would run unpatched. " +
                   "Write it as `dotnet publish` does: one JSON object, no comments, no name twice";
        }
        if (switched is not { } selfContained) return null;
        if (selfContained && folder) return null;
        return selfContained
            // A bundle's code could be started on the installed runtime too, but only from its
            // extracted files, which a self-contained single-file app does not lay out.
            ? $"{runtimeConfig} sets {HooksSwitch}=false, as a trimmed (PublishTrimmed) single-file app does: without its startup hook SockShim can " +
              "neither install itself nor check that its woven System.Net.Sockets was loaded, so the app would run unpatched; a trimmed app is served by starting " +
              "its code on the installed runtime, which SockShim does for an app published as a folder, not bundled into one file. " +
              "Publish it without PublishSingleFile (trimmed in a folder is served), or without PublishTrimmed."
            : $"{runtimeConfig} sets {HooksSwitch}=false (StartupHookSupport=false or PublishTrimmed): without its startup hook SockShim can " +
              "neither install itself nor check that its woven System.Net.Sockets was loaded, so the app would run unpatched. " +
              "Publish it without StartupHookSupport=false and without PublishTrimmed, or remove that setting from the file.";
    }

    /// <summary>Null when the runtimeconfig <paramref name="root"/> leaves startup hooks on;
    /// otherwise whether the app that switches them off is self-contained. A shape other than
    /// `dotnet publish` writes is InvalidOperationException.</summary>
    private static bool? SwitchesHooksOff(JsonNode? root)
    {
        var options = root?["runtimeOptions"];
        var value = options?["configProperties"]?[HooksSwitch];
        bool off = value?.GetValueKind() switch
        {
            System.Text.Json.JsonValueKind.False => true,
            System.Text.Json.JsonValueKind.String => string.Equals(value.GetValue<string>(), "false", StringComparison.OrdinalIgnoreCase),
            _ => false,
        };
        return off ? options?["includedFrameworks"] is not null : null;
    }
}

/// <summary>An app found unservable only once its copy was made (its files changed after the
/// first check): refused as <see cref="DeploymentCheck.Problem"/> refuses, exit 97.</summary>
public sealed class AppRefusedException(string message) : Exception(message);
