using System.Text.Json;
using System.Text.Json.Nodes;
using SockShim.Interceptor.Store;

namespace SockShim.Interceptor.Launch;

/// <summary>
/// Whether `sockshim run` can start a command without the startup hook: only
/// where it proves, from the command's files and the environment, that the app will load the
/// woven System.Net.Sockets, so no check inside the app is needed to refuse a bypass (the woven
/// copy then wires itself at the first socket, see HookContract.WireVariable). The proof covers
/// `dotnet app.dll` and a framework-dependent apphost:
/// <list type="bullet">
/// <item>the .NET installation that will run it is known: for `dotnet`, a real muxer (an ELF file
/// with host/fxr beside it, found through its real path); for an apphost, the one its default
/// search finds (DOTNET_ROOT_&lt;ARCH&gt;, DOTNET_ROOT, else /usr/share/dotnet when no installation
/// is registered in /etc/dotnet), the apphost itself read for that (<see cref="ApphostImage"/>:
/// it starts the dll of its own name beside it, searches the default way, bundles nothing);</item>
/// <item>every Microsoft.NETCore.App version of that installation (at least one) is one the
/// store has verified for this launch, so whatever version the app rolls forward to is woven
/// (roll-forward settings need no reading: no candidate is left unwoven);</item>
/// <item>the app, found through its real path (every link and `..` resolved by the kernel), is
/// framework-dependent (its runtimeconfig.json names frameworks, not included ones);</item>
/// <item>nothing of the app can outrank the framework's copy: no file of its folder is named
/// System.Net.Sockets.dll or .exe in any case (without a deps.json the host lists them all),
/// and its deps.json, parsed, names no System.Net.Sockets anywhere (keys and values, decoded);</item>
/// <item>no DOTNET_ADDITIONAL_DEPS or DOTNET_SHARED_STORE of the user's is combined with the store's.</item>
/// </list>
/// Anything else (SDK commands such as `dotnet run` and `dotnet test`, `dotnet exec` with
/// options, scripts, an apphost renamed or built with its own search options) keeps the startup
/// hook, which checks at start. What cannot be read is not proved.
/// </summary>
public static class HooklessProof
{
    /// <summary>What was proved: the app's real path, the runtimeconfig and deps.json texts that
    /// were judged (the start must read these, not the files again), and for an apphost its real path.</summary>
    /// <param name="App">The app's dll by real path.</param>
    /// <param name="RuntimeConfig">Its runtimeconfig's text, as judged.</param>
    /// <param name="Deps">Its deps.json's bytes, as judged; null when it has none.</param>
    /// <param name="Apphost">The apphost by real path; null for `dotnet app.dll`.</param>
    /// <param name="ApphostImage">The apphost's bytes, as judged.</param>
    /// <param name="Installation">The .NET installation proved, by real path.</param>
    /// <param name="Muxer">For `dotnet app.dll`, the muxer proved, by real path: what is exec'd (the
    /// name given is looked up again at the exec, and a link on the way may lead elsewhere by then).</param>
    /// <param name="RootVariable">For an apphost, the variable that named its installation
    /// (DOTNET_ROOT_X64, DOTNET_ROOT), which the start sets to the real path proved; null for the default.</param>
    /// <param name="Names">The entries of the app's folder the proof judged (the host lists the
    /// folder's dlls when there is no deps.json): an apphost's overlay links these and no other.</param>
    public sealed record Proof(string App, string RuntimeConfig, byte[]? Deps, string? Apphost, byte[]? ApphostImage, string Installation, string? Muxer, string? RootVariable, IReadOnlyList<string> Names);

    /// <summary>Null when proved; otherwise why not, in words (said with --verbose).</summary>
    /// <param name="command">The command as the user gave it.</param>
    /// <param name="store">The store whose woven copies this launch checked.</param>
    /// <param name="proof">When proved: what was judged.</param>
    public static string? WhyNot(IReadOnlyList<string> command, WovenStore store, out Proof? proof)
    {
        proof = null;
        try { return Prove(command, store, out proof); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or JsonException or InvalidOperationException)
        {
            return $"the command's files cannot be read: {ex.Message}";
        }
    }

    private static string? Prove(IReadOnlyList<string> command, WovenStore store, out Proof? proof)
    {
        proof = null;
        bool muxed = command.Count >= 2 && Path.GetFileName(command[0]) == "dotnet";
        if (command.Count == 0 || muxed && !command[1].EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
            return "only `dotnet app.dll` and an apphost are proved (an SDK command or `dotnet exec` with options decides itself what loads)";
        if ((User("DOTNET_ADDITIONAL_DEPS") ?? User("DOTNET_SHARED_STORE")) is { } given)
            return $"the environment already sets {given}, which the host combines with the store's";
        // A start without hooks would drop the user's own (an APM agent, say) without a word.
        if (User("DOTNET_STARTUP_HOOKS") is { } hooks) return $"the environment already sets {hooks}, whose hooks a start without startup hooks would not run";

        if (Exec.Resolve(command[0], Environment.GetEnvironmentVariable("PATH")) is not { } found || RealPath(found) is not { } started)
            return $"{command[0]} is not found";
        string root, app;
        string? apphost = null, rootVariable = null;
        byte[]? image = null;
        if (muxed)
        {
            root = Path.GetDirectoryName(started)!;
            if (!IsElf(started) || !Directory.Exists(Path.Combine(root, "host", "fxr")))
                return $"{found} is not the .NET muxer itself ({started}: no ELF file with host/fxr beside it; a wrapper or a shim decides itself which installation runs)";
            if (RealPath(command[1]) is not { } dll) return $"{command[1]} is not found";
            app = dll;
        }
        else
        {
            if (ApphostInstallation(out var why, out rootVariable) is not { } installation) return why;
            if (ApphostImage.WhyNot(started, installation, out image) is { } notApphost) return notApphost;
            root = installation;
            // The host takes the app by its real path and reads the runtimeconfig beside that.
            app = started + ".dll";
            if (RealPath(app) != app) return $"{app} is not a file of its own beside its apphost (missing, or a link the host would follow to another folder's runtimeconfig)";
            apphost = started;
        }
        // Every folder the host could take for a runtime, not only those the store's search reads
        // as versions (a name such as 10.0.13+build is still a candidate to the host).
        string frameworks = Path.Combine(root, "shared", "Microsoft.NETCore.App");
        var candidates = Directory.Exists(frameworks) ? Directory.GetDirectories(frameworks) : [];
        if (candidates.Length == 0) return $"{root} has no Microsoft.NETCore.App runtime";
        foreach (var candidate in candidates)
        {
            string version = Path.GetFileName(candidate);
            if (!store.Verified.TryGetValue(version, out var prepared) || !SamePath(prepared.Runtime.Directory, candidate))
                return $"runtime {version} in {root} has no woven copy checked for this launch";
            if (FrameworkEntryProblem(candidate) is { } outranks) return outranks;
        }

        string dir = Path.GetDirectoryName(app)!;
        // Listed once: what is judged here is what an apphost's overlay links (a name that
        // appears later, a deps.json say, is neither judged nor linked: the seventh review
        // planted one between the two listings).
        var names = Directory.EnumerateFileSystemEntries(dir).Select(e => Path.GetFileName(e)).Order(StringComparer.Ordinal).ToList();
        if (apphost is not null && names.Contains("libhostfxr.so")) return $"{apphost} has a libhostfxr.so beside it: a self-contained app";
        bool listed = !File.Exists(Path.ChangeExtension(app, ".deps.json")); // without a deps.json the host lists the folder
        foreach (var name in names)
        {
            // The .ni forms too: the host lists those as the assembly as well (the eighth review).
            if (DeploymentCheck.IsAssemblyNamed(name, "System.Net.Sockets")) return $"{dir} has a System.Net.Sockets of its own ({name})";
            // One planted since the deployment check looked: SockShim's hook replaced, refused.
            if (listed && DeploymentCheck.IsAssemblyNamed(name, DeploymentCheck.HookAssembly))
                throw new AppRefusedException(DeploymentCheck.ShadowsHook(app) ?? $"{dir} brings an assembly named {DeploymentCheck.HookAssembly} of its own");
        }
        string runtimeConfig = Path.ChangeExtension(app, ".runtimeconfig.json"), deps = Path.ChangeExtension(app, ".deps.json");
        // The host would read a development file beside the app's runtimeconfig, not beside the copy.
        if (File.Exists(Path.ChangeExtension(app, ".runtimeconfig.dev.json")) || names.Contains(Path.GetFileName(Path.ChangeExtension(app, ".runtimeconfig.dev.json")))) return $"{Path.ChangeExtension(app, ".runtimeconfig.dev.json")} adds to the app's runtimeconfig";
        // Bounded, regular files only: the app's owner may have made either a FIFO or a link to a device.
        string text = DeploymentCheck.ReadConfig(runtimeConfig);
        using (var config = JsonDocument.Parse(text, RuntimeConfigReading))
        {
            if (config.RootElement.ValueKind != JsonValueKind.Object || !config.RootElement.TryGetProperty("runtimeOptions", out var options) || options.ValueKind != JsonValueKind.Object)
                return $"{runtimeConfig} has no runtimeOptions";
            if (Names(config.RootElement).Count(n => n == "runtimeOptions") > 1 || Names(options).Any(n => n == "includedFrameworks"))
                return "a self-contained app (its runtimeconfig.json includes its frameworks), or one whose runtimeconfig.json says it twice";
            if (!options.TryGetProperty("framework", out _) && !options.TryGetProperty("frameworks", out _)) return $"{runtimeConfig} names no framework";
            if (FrameworkProblem(options, root) is { } framework) return framework;
        }
        // An app-local System.Net.Sockets (a package's runtime asset, in any folder) would outrank
        // the framework's: every name and value of the parsed file, escapes decoded.
        byte[]? depsBytes = null;
        if (File.Exists(deps))
        {
            depsBytes = TrustedPaths.ReadBounded(deps, DeploymentCheck.MaxConfigBytes);
            using var document = JsonDocument.Parse(depsBytes);
            if (DeploymentCheck.Mentions(document.RootElement, "System.Net.Sockets")) return $"{deps} lists a System.Net.Sockets of the app's own";
            if (DeploymentCheck.Mentions(document.RootElement, DeploymentCheck.HookAssembly))
                throw new AppRefusedException($"{deps} lists an assembly named {DeploymentCheck.HookAssembly} of the app's own, which the runtime would load in place of SockShim's hook: the app would run unpatched. Remove it from the app");
        }
        if (apphost is not null && depsBytes is null && names.Contains(Path.GetFileName(deps))) return $"{deps} is not a regular file"; // listed, not read
        proof = new Proof(app, text, depsBytes, apphost, image, root, muxed ? started : null, rootVariable, names);
        return null;

        static string? User(string variable) => Environment.GetEnvironmentVariable(variable) is { Length: > 0 } ? variable : null;
    }

    /// <summary>The installation an apphost with the default search runs on, by real path, when
    /// its folder has no hostfxr: DOTNET_ROOT_&lt;ARCH&gt;, else DOTNET_ROOT (non-empty), else the
    /// default /usr/share/dotnet. An installation registered in /etc/dotnet (install_location,
    /// which the host prefers to the default) is not read: not proved.</summary>
    private static string? ApphostInstallation(out string why, out string? variableUsed)
    {
        why = "";
        variableUsed = null;
        string arch = $"DOTNET_ROOT_{System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString().ToUpperInvariant()}";
        foreach (var variable in (ReadOnlySpan<string>)[arch, "DOTNET_ROOT"])
        {
            if (Environment.GetEnvironmentVariable(variable) is not { Length: > 0 } value) continue;
            variableUsed = variable;
            if (RealPath(value) is { } named && Directory.Exists(Path.Combine(named, "host", "fxr"))) return named;
            why = $"{variable} names {value}, which is no .NET installation (no host/fxr)";
            return null;
        }
        foreach (var registration in (ReadOnlySpan<string>)[$"/etc/dotnet/install_location_{arch[12..].ToLowerInvariant()}", "/etc/dotnet/install_location"])
            if (File.Exists(registration))
            {
                why = $"the apphost's installation is registered in {registration}, which is not read here";
                return null;
            }
        if (RealPath(DefaultInstallation) is { } found && Directory.Exists(Path.Combine(found, "host", "fxr"))) return found;
        why = $"no DOTNET_ROOT is set and {DefaultInstallation} is no .NET installation";
        return null;
    }

    /// <summary>Why the runtime folder <paramref name="runtime"/>'s own System.Net.Sockets could
    /// outrank the woven copy: the host takes, of the entries its deps files give one assembly,
    /// the one with the higher assembly and file version, and the woven copy's entry
    /// (<see cref="WovenStore.WovenAssemblyVersion"/>, <see cref="WovenStore.WovenFileVersionText"/>)
    /// wins only over a framework entry below it. The store weaves the folder's assembly, not its
    /// deps file, so a folder of links to a real runtime with a deps file of its own saying
    /// 10.0.65535.99 loaded its unwoven copy under a proof (the seventh review). Exactly one
    /// entry, below the woven one's in both, or not proved.</summary>
    private static string? FrameworkEntryProblem(string runtime)
    {
        string file = Path.Combine(runtime, "Microsoft.NETCore.App.deps.json");
        using var document = JsonDocument.Parse(TrustedPaths.ReadBounded(file, DeploymentCheck.MaxConfigBytes));
        var entries = new List<JsonElement>();
        if (document.RootElement.ValueKind == JsonValueKind.Object && document.RootElement.TryGetProperty("targets", out var targets) && targets.ValueKind == JsonValueKind.Object)
            foreach (var target in targets.EnumerateObject().Where(t => t.Value.ValueKind == JsonValueKind.Object))
                foreach (var library in target.Value.EnumerateObject().Where(l => l.Value.ValueKind == JsonValueKind.Object))
                    foreach (var group in library.Value.EnumerateObject().Where(g => g.Value.ValueKind == JsonValueKind.Object))
                        entries.AddRange(group.Value.EnumerateObject().Where(a => a.Name.Contains("System.Net.Sockets", StringComparison.OrdinalIgnoreCase)).Select(a => a.Value));
        if (entries.Count != 1 || entries[0].ValueKind != JsonValueKind.Object) return $"{file} does not list System.Net.Sockets once";
        Version? Of(string property) => entries[0].TryGetProperty(property, out var v) && v.ValueKind == JsonValueKind.String && Version.TryParse(v.GetString(), out var parsed) ? parsed : null;
        if (Of("assemblyVersion") is not { } assembly || Of("fileVersion") is not { } fileVersion
            || assembly > Version.Parse(WovenStore.WovenAssemblyVersion) || fileVersion >= Version.Parse(WovenStore.WovenFileVersionText))
            return $"{file} lists its System.Net.Sockets at a version the woven copy's ({WovenStore.WovenAssemblyVersion}, {WovenStore.WovenFileVersionText}) does not outrank";
        return null;
    }

    /// <summary>Where the .NET host on Linux looks when nothing else names an installation.</summary>
    private const string DefaultInstallation = "/usr/share/dotnet";

    /// <summary>Why the frameworks the app names are not all known ones: each must be a plain name
    /// (the host joins it to its shared folder, so `../` would climb out to any folder) of a
    /// framework installed there, and one other than Microsoft.NETCore.App must carry no
    /// System.Net.Sockets of its own (in a version folder, or named by its deps.json).</summary>
    private static string? FrameworkProblem(JsonElement options, string root)
    {
        var references = new List<JsonElement>();
        if (options.TryGetProperty("framework", out var single)) references.Add(single);
        if (options.TryGetProperty("frameworks", out var list) && list.ValueKind == JsonValueKind.Array) references.AddRange(list.EnumerateArray());
        else if (options.TryGetProperty("frameworks", out _)) return "the runtimeconfig's frameworks are not a list";
        foreach (var reference in references)
        {
            if (reference.ValueKind != JsonValueKind.Object || !reference.TryGetProperty("name", out var named) || named.ValueKind != JsonValueKind.String || named.GetString() is not { Length: > 0 } name)
                return "the runtimeconfig names a framework without a name";
            if (name.Contains('/') || name.Contains('\\') || name is "." or ".." || name.Contains('\0'))
                return $"the runtimeconfig names the framework '{name}', which is not a plain name";
            string folder = Path.Combine(root, "shared", name);
            if (!Directory.Exists(folder)) return $"the framework {name} is not installed in {root}";
            if (name == "Microsoft.NETCore.App") continue;
            foreach (var version in Directory.GetDirectories(folder))
            {
                if (Directory.EnumerateFiles(version).Any(f => Path.GetFileName(f).StartsWith("System.Net.Sockets.", StringComparison.OrdinalIgnoreCase)))
                    return $"the framework {name} carries a System.Net.Sockets of its own ({version})";
                foreach (var depsFile in Directory.EnumerateFiles(version, "*.deps.json"))
                {
                    using var document = JsonDocument.Parse(DeploymentCheck.ReadConfig(depsFile));
                    if (DeploymentCheck.Mentions(document.RootElement, "System.Net.Sockets")) return $"{depsFile} lists a System.Net.Sockets of the framework {name}";
                }
            }
        }
        return null;
    }

    private static readonly JsonDocumentOptions RuntimeConfigReading = new() { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };

    /// <summary>The proved runtimeconfig text with startup hooks turned off
    /// (System.StartupHookProvider.IsSupported false), kept in the account's private cache under a
    /// name made from its content; its path. The app starts from it (`dotnet exec --runtimeconfig`),
    /// so the host reads the text that was proved, and the app pays no startup hook while
    /// DOTNET_STARTUP_HOOKS stays set for the processes it starts, which nothing here proves.</summary>
    public static string WithoutStartupHooks(WovenStore store, string app, string runtimeConfig)
    {
        byte[] bytes = HooksOff(runtimeConfig);
        string text = System.Text.Encoding.UTF8.GetString(bytes);
        string path = Path.Combine(TrustedPaths.PrivateDirectory(Path.Combine(store.Root, "runtimeconfig")), $"{Path.GetFileNameWithoutExtension(app)}.{Stack.Addressing.Fnv1a.Hash64(text):x16}.runtimeconfig.json");
        // Kept from an earlier launch when its text is this one; otherwise written whole under
        // another name and renamed into place, so no launch ever reads half of it.
        if (File.Exists(path) && TrustedPaths.ReadBounded(path, bytes.Length + 1).AsSpan().SequenceEqual(bytes)) return path;
        TrustedPaths.Replace(path, text, 0b110_000_000);
        return path;
    }

    /// <summary>The proved runtimeconfig text with startup hooks turned off
    /// (System.StartupHookProvider.IsSupported false), as UTF-8.</summary>
    public static byte[] HooksOff(string runtimeConfig)
    {
        var root = JsonNode.Parse(runtimeConfig, null, RuntimeConfigReading)!.AsObject();
        var options = root["runtimeOptions"]!.AsObject();
        if (options["configProperties"] is not JsonObject properties) options["configProperties"] = properties = new JsonObject();
        properties["System.StartupHookProvider.IsSupported"] = false;
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true })) root.WriteTo(writer);
        return buffer.WrittenSpan.ToArray();
    }

    private static IEnumerable<string> Names(JsonElement o) => o.ValueKind == JsonValueKind.Object ? o.EnumerateObject().Select(p => p.Name) : [];


    // Two runtime folders are the same when their System.Net.Sockets.dll is the same file.
    private static bool SamePath(string a, string b) =>
        RealPath(Path.Combine(a, "System.Net.Sockets.dll")) is { } ra && ra == RealPath(Path.Combine(b, "System.Net.Sockets.dll"));

    /// <summary>The kernel's own path of an existing file (every link and `..` resolved as a
    /// lookup resolves them: `..` after a link is the link target's parent), or null. Opened with
    /// open(2) on the path as given: .NET's file APIs remove `..` from the text first.</summary>
    private static unsafe string? RealPath(string file)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(file + "\0");
        int fd;
        fixed (byte* p = bytes) fd = Tmds.Linux.LibC.open(p, Tmds.Linux.LibC.O_PATH | Tmds.Linux.LibC.O_CLOEXEC, 0);
        if (fd < 0) return null;
        try { return new FileInfo($"/proc/self/fd/{fd}").LinkTarget; }
        finally { Tmds.Linux.LibC.close(fd); }
    }

    private static bool IsElf(string path)
    {
        Span<byte> magic = stackalloc byte[4];
        using var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        return RandomAccess.Read(file, magic, 0) == 4 && magic.SequenceEqual((ReadOnlySpan<byte>)[0x7f, (byte)'E', (byte)'L', (byte)'F']);
    }
}
