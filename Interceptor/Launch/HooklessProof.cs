using System.Text.Json;
using System.Text.Json.Nodes;
using SockShim.Interceptor.Store;

namespace SockShim.Interceptor.Launch;

/// <summary>
/// Whether `sockshim run` can start a command without the startup hook: only
/// where it proves, from the command's files and the environment, that the app will load the
/// woven System.Net.Sockets, so no check inside the app is needed to refuse a bypass (the woven
/// copy then wires itself at the first socket, see HookContract.WireVariable). The proof covers
/// `dotnet app.dll` only:
/// <list type="bullet">
/// <item>`dotnet` is a real muxer (an ELF file with host/fxr beside it, found through its real
/// path), and every Microsoft.NETCore.App version of its installation (at least one) is one the
/// store has verified for this launch, so whatever version the app rolls forward to is woven
/// (roll-forward settings need no reading: no candidate is left unwoven);</item>
/// <item>the app, found through its real path (every link and `..` resolved by the kernel), is
/// framework-dependent (its runtimeconfig.json names frameworks, not included ones);</item>
/// <item>nothing of the app can outrank the framework's copy: no file of its folder is named
/// System.Net.Sockets.dll or .exe in any case (without a deps.json the host lists them all),
/// and its deps.json, parsed, names no System.Net.Sockets anywhere (keys and values, decoded);</item>
/// <item>no DOTNET_ADDITIONAL_DEPS or DOTNET_SHARED_STORE of the user's is combined with the store's.</item>
/// </list>
/// An apphost is not proved: the app it runs is a path written inside it, which may name another
/// folder or another app than its own name says. Anything else (apphosts, SDK commands such as
/// `dotnet run` and `dotnet test`, `dotnet exec` with options, scripts) keeps the startup hook,
/// which checks at start. What cannot be read is not proved.
/// </summary>
public static class HooklessProof
{
    /// <summary>Null when proved; otherwise why not, in words (said with --verbose).</summary>
    /// <param name="command">The command as the user gave it.</param>
    /// <param name="store">The store whose woven copies this launch checked.</param>
    /// <param name="runtimeConfig">When proved: the runtimeconfig text that was proved.</param>
    /// <param name="app">When proved: the app's real path, the one judged.</param>
    public static string? WhyNot(IReadOnlyList<string> command, WovenStore store, out string? runtimeConfig, out string? app)
    {
        runtimeConfig = app = null;
        try { return Prove(command, store, out runtimeConfig, out app); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or JsonException or InvalidOperationException)
        {
            return $"the command's files cannot be read: {ex.Message}";
        }
    }

    private static string? Prove(IReadOnlyList<string> command, WovenStore store, out string? runtimeConfigText, out string? provedApp)
    {
        runtimeConfigText = provedApp = null;
        if (command.Count < 2 || Path.GetFileName(command[0]) != "dotnet" || !command[1].EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
            return "only `dotnet app.dll` is proved (an apphost runs the app path written inside it; an SDK command, `dotnet exec` with options or a script decides itself what loads)";
        if ((User("DOTNET_ADDITIONAL_DEPS") ?? User("DOTNET_SHARED_STORE")) is { } given)
            return $"the environment already sets {given}, which the host combines with the store's";
        // A start without hooks would drop the user's own (an APM agent, say) without a word.
        if (User("DOTNET_STARTUP_HOOKS") is { } hooks) return $"the environment already sets {hooks}, whose hooks a start without startup hooks would not run";

        if (Exec.Resolve(command[0], Environment.GetEnvironmentVariable("PATH")) is not { } found || RealPath(found) is not { } muxer)
            return $"{command[0]} is not found";
        string root = Path.GetDirectoryName(muxer)!;
        if (!IsElf(muxer) || !Directory.Exists(Path.Combine(root, "host", "fxr")))
            return $"{found} is not the .NET muxer itself ({muxer}: no ELF file with host/fxr beside it; a wrapper or a shim decides itself which installation runs)";
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
        }

        if (RealPath(command[1]) is not { } app) return $"{command[1]} is not found";
        string dir = Path.GetDirectoryName(app)!;
        foreach (var file in Directory.EnumerateFiles(dir))
        {
            string name = Path.GetFileName(file);
            if (name.Equals("System.Net.Sockets.dll", StringComparison.OrdinalIgnoreCase) || name.Equals("System.Net.Sockets.exe", StringComparison.OrdinalIgnoreCase))
                return $"{dir} has a System.Net.Sockets of its own ({name})";
        }
        string runtimeConfig = Path.ChangeExtension(app, ".runtimeconfig.json"), deps = Path.ChangeExtension(app, ".deps.json");
        // The host would read a development file beside the app's runtimeconfig, not beside the copy.
        if (File.Exists(Path.ChangeExtension(app, ".runtimeconfig.dev.json"))) return $"{Path.ChangeExtension(app, ".runtimeconfig.dev.json")} adds to the app's runtimeconfig";
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
        if (File.Exists(deps))
        {
            using var document = JsonDocument.Parse(DeploymentCheck.ReadConfig(deps));
            if (Mentions(document.RootElement, "System.Net.Sockets")) return $"{deps} lists a System.Net.Sockets of the app's own";
        }
        runtimeConfigText = text;
        provedApp = app;
        return null;

        static string? User(string variable) => Environment.GetEnvironmentVariable(variable) is { Length: > 0 } ? variable : null;
    }

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
                    if (Mentions(document.RootElement, "System.Net.Sockets")) return $"{depsFile} lists a System.Net.Sockets of the framework {name}";
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
        var root = JsonNode.Parse(runtimeConfig, null, RuntimeConfigReading)!.AsObject();
        var options = root["runtimeOptions"]!.AsObject();
        if (options["configProperties"] is not JsonObject properties) options["configProperties"] = properties = new JsonObject();
        properties["System.StartupHookProvider.IsSupported"] = false;
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true })) root.WriteTo(writer);
        byte[] bytes = buffer.WrittenSpan.ToArray();
        string text = System.Text.Encoding.UTF8.GetString(bytes);
        string path = Path.Combine(TrustedPaths.PrivateDirectory(Path.Combine(store.Root, "runtimeconfig")), $"{Path.GetFileNameWithoutExtension(app)}.{Stack.Addressing.Fnv1a.Hash64(text):x16}.runtimeconfig.json");
        // Kept from an earlier launch when its text is this one; otherwise written whole under
        // another name and renamed into place, so no launch ever reads half of it.
        if (File.Exists(path) && TrustedPaths.ReadBounded(path, bytes.Length + 1).AsSpan().SequenceEqual(bytes)) return path;
        TrustedPaths.Replace(path, text, 0b110_000_000);
        return path;
    }

    private static IEnumerable<string> Names(JsonElement o) => o.ValueKind == JsonValueKind.Object ? o.EnumerateObject().Select(p => p.Name) : [];

    private static bool Mentions(JsonElement e, string what) => e.ValueKind switch
    {
        JsonValueKind.Object => e.EnumerateObject().Any(p => p.Name.Contains(what, StringComparison.OrdinalIgnoreCase) || Mentions(p.Value, what)),
        JsonValueKind.Array => e.EnumerateArray().Any(v => Mentions(v, what)),
        JsonValueKind.String => e.GetString()!.Contains(what, StringComparison.OrdinalIgnoreCase),
        _ => false,
    };

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
