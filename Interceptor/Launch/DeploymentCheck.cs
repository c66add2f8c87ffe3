using System.Buffers.Binary;
using System.Text.Json.Nodes;

namespace SockShim.Interceptor.Launch;

/// <summary>
/// What `sockshim run` can tell from the files of the command before starting it: an app that
/// would run unpatched without the startup hook ever saying so (startup hooks switched off, as
/// PublishTrimmed does; a Native AOT binary with no IL to weave) is refused here, since no check
/// inside such an app would run. Self-contained and single-file apps with hooks on are left to
/// the startup hook, which refuses them at start with what it loaded.
/// </summary>
public static class DeploymentCheck
{
    /// <summary>The startup hook's exit code for an app SockShim refused to start (the hook contract's).</summary>
    public const int RefusedExitCode = Contract.HookContract.RefusedExitCode;

    private const string HooksSwitch = "System.StartupHookProvider.IsSupported";

    /// <summary>The hosting layer's bundle signature (SHA-256 of ".net core bundle"), which every
    /// apphost carries; the 8 bytes before it are the bundle header's offset, 0 when nothing is
    /// bundled.</summary>
    private static ReadOnlySpan<byte> BundleSignature =>
    [
        0x8b, 0x12, 0x02, 0xb9, 0x6a, 0x61, 0x20, 0x38, 0x72, 0x7b, 0x93, 0x02, 0x14, 0xd7, 0xa0, 0x32,
        0x13, 0xf5, 0xb9, 0xe6, 0xef, 0xae, 0x33, 0x18, 0xee, 0x3b, 0x2d, 0xce, 0x24, 0xb3, 0x6a, 0xae,
    ];

    /// <summary>An apphost's .data is a few kB, a single-file host's some hundred kB.</summary>
    private const int MaxDataBytes = 16 << 20;

    /// <summary>Why <paramref name="command"/> cannot be served, as one line, or null when nothing
    /// in its files says so (including commands that are not a .NET app at all).</summary>
    public static string? Problem(IReadOnlyList<string> command)
    {
        if (command.Count == 0) return null;
        if (Path.GetFileName(command[0]) == "dotnet")
            return EntryAssembly(command) is { } dll ? HooksOff(Path.ChangeExtension(dll, ".runtimeconfig.json")) : null;
        if (Resolve(command[0]) is not { } file) return null;
        return Apphost(file);
    }

    /// <summary>The app of `dotnet app.dll` or `dotnet exec [options] app.dll`; null for SDK verbs.</summary>
    private static string? EntryAssembly(IReadOnlyList<string> command)
    {
        if (command.Count < 2) return null;
        if (command[1].EndsWith(".dll", StringComparison.OrdinalIgnoreCase)) return command[1];
        if (command[1] != "exec") return null;
        for (int i = 2; i < command.Count; i++)
        {
            if (command[i].EndsWith(".dll", StringComparison.OrdinalIgnoreCase)) return command[i];
            if (command[i].StartsWith("--")) i++; // every exec option takes a value
        }
        return null;
    }

    // The file the exec will run (the same lookup as Exec's), as a full path, or null.
    private static string? Resolve(string name) =>
        Exec.Resolve(name, Environment.GetEnvironmentVariable("PATH")) is { } found && File.Exists(found) ? Path.GetFullPath(found) : null;

    private static string? Apphost(string file)
    {
        string runtimeConfig = file + ".runtimeconfig.json"; // an apphost's name is its app's

        if (File.Exists(runtimeConfig)) return HooksOff(runtimeConfig);

        try
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            if (Sections(stream) is not { } sections) return null; // a script or other file: the startup hook still checks what it starts
            // Single-file: its runtimeconfig is inside the bundle; with hooks on, the hook
            // refuses or serves it at start.
            if (BundleOffset(stream, sections) is > 0 and long bundle)
                return BundledRuntimeConfig(stream, bundle) is { } json ? HooksOff($"{file} (its bundled runtimeconfig.json)", json) : null;
            if (File.Exists(file + ".dll")) return null;
            if (sections.ContainsKey("__managedcode"))
                return $"{file} is a Native AOT app (an ELF binary with compiled managed code, no IL assembly beside it, no bundle): " +
                       "there is no IL of System.Net.Sockets to weave, so SockShim cannot give its sockets addresses. " +
                       "A later version will serve Native AOT apps; publish without PublishAot.";
        }
        catch (IOException) { return null; } // unreadable here (or truncated): starting it will say why
        catch (UnauthorizedAccessException) { return null; }
        return null;
    }

    /// <summary>An app whose runtimeconfig switches startup hooks off: the hook that installs
    /// SockShim and refuses a bypass would never run.</summary>
    private static string? HooksOff(string runtimeConfig)
    {
        string json;
        try { json = File.ReadAllText(runtimeConfig); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return null; }
        return HooksOff(runtimeConfig, json);
    }

    private static string? HooksOff(string runtimeConfig, string json)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(json); }
        catch (System.Text.Json.JsonException) { return null; }
        var options = root?["runtimeOptions"];
        var value = options?["configProperties"]?[HooksSwitch];
        bool off = value?.GetValueKind() switch
        {
            System.Text.Json.JsonValueKind.False => true,
            System.Text.Json.JsonValueKind.String => string.Equals(value.GetValue<string>(), "false", StringComparison.OrdinalIgnoreCase),
            _ => false,
        };
        if (!off) return null;
        bool selfContained = options?["includedFrameworks"] is not null;
        return selfContained
            ? $"{runtimeConfig} sets {HooksSwitch}=false, as a trimmed (PublishTrimmed) self-contained app does: without its startup hook SockShim can " +
              "neither install itself nor check that its woven System.Net.Sockets was loaded, so the app would run unpatched. " +
              "Publish it without PublishTrimmed and framework-dependent (--self-contained false)."
            : $"{runtimeConfig} sets {HooksSwitch}=false (StartupHookSupport=false or PublishTrimmed): without its startup hook SockShim can " +
              "neither install itself nor check that its woven System.Net.Sockets was loaded, so the app would run unpatched. " +
              "Publish it without StartupHookSupport=false and without PublishTrimmed, or remove that setting from the file.";
    }

    /// <summary>The bundle header's offset, which sits before the signature in the apphost's
    /// .data section (more than 10 MB into a self-contained single-file host, so only that
    /// section is read, not the file); 0 in an apphost with nothing bundled.</summary>
    private static long? BundleOffset(FileStream file, Dictionary<string, (long Offset, long Size)> sections)
    {
        if (!sections.TryGetValue(".data", out var data) || data.Size > MaxDataBytes) return null;
        var bytes = new byte[data.Size];
        file.Position = data.Offset;
        file.ReadExactly(bytes);
        int at = bytes.AsSpan().IndexOf(BundleSignature);
        return at >= 8 ? BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(at - 8)) : null;
    }

    /// <summary>The runtimeconfig.json a single-file bundle carries, from its header (the
    /// hosting layer's format: major, minor, file count, bundle id, then from version 2 the
    /// deps.json and runtimeconfig.json offset and size); null if there is none or it is unreadable.</summary>
    private static string? BundledRuntimeConfig(FileStream file, long headerAt)
    {
        if (headerAt + 12 > file.Length) return null;
        using var reader = new BinaryReader(file, System.Text.Encoding.UTF8, leaveOpen: true);
        file.Position = headerAt;
        uint major = reader.ReadUInt32();
        reader.ReadUInt32(); // minor
        reader.ReadInt32();  // file count
        reader.ReadString(); // bundle id, 7-bit length prefixed as BinaryWriter writes it
        if (major < 2) return null;
        reader.ReadInt64(); reader.ReadInt64(); // deps.json
        long at = reader.ReadInt64(), size = reader.ReadInt64();
        if (at <= 0 || size <= 0 || size > 1 << 20 || at + size > file.Length) return null;
        var bytes = new byte[size];
        file.Position = at;
        file.ReadExactly(bytes);
        return System.Text.Encoding.UTF8.GetString(bytes);
    }

    /// <summary>The sections (file offset and size by name) of a 64-bit little-endian ELF file
    /// (section headers survive `strip`); null for anything else.</summary>
    private static Dictionary<string, (long Offset, long Size)>? Sections(FileStream elf)
    {
        Span<byte> header = stackalloc byte[64];
        if (elf.Length < header.Length) return null;
        elf.Position = 0;
        elf.ReadExactly(header);
        if (!header[..4].SequenceEqual((ReadOnlySpan<byte>)[0x7f, (byte)'E', (byte)'L', (byte)'F'])) return null;
        if (header[4] != 2 || header[5] != 1) return null; // ELFCLASS64, ELFDATA2LSB
        long sectionsAt = BinaryPrimitives.ReadInt64LittleEndian(header[0x28..]);
        int entrySize = BinaryPrimitives.ReadUInt16LittleEndian(header[0x3A..]);
        int count = BinaryPrimitives.ReadUInt16LittleEndian(header[0x3C..]);
        int namesIndex = BinaryPrimitives.ReadUInt16LittleEndian(header[0x3E..]);
        if (entrySize < 64 || count == 0 || namesIndex >= count || sectionsAt <= 0 || sectionsAt + (long)entrySize * count > elf.Length) return null;
        var table = new byte[entrySize * count];
        elf.Position = sectionsAt;
        elf.ReadExactly(table);
        var names = table.AsSpan(namesIndex * entrySize, entrySize);
        long namesAt = BinaryPrimitives.ReadInt64LittleEndian(names[0x18..]);
        long namesSize = BinaryPrimitives.ReadInt64LittleEndian(names[0x20..]);
        if (namesAt <= 0 || namesSize <= 0 || namesSize > 1 << 20 || namesAt + namesSize > elf.Length) return null;
        var text = new byte[namesSize];
        elf.Position = namesAt;
        elf.ReadExactly(text);
        var sections = new Dictionary<string, (long, long)>();
        for (int i = 0; i < count; i++)
        {
            var entry = table.AsSpan(i * entrySize, entrySize);
            int name = BinaryPrimitives.ReadInt32LittleEndian(entry);
            if (name < 0 || name >= text.Length) continue;
            int length = text.AsSpan(name).IndexOf((byte)0);
            if (length <= 0) continue;
            sections.TryAdd(System.Text.Encoding.ASCII.GetString(text, name, length),
                (BinaryPrimitives.ReadInt64LittleEndian(entry[0x18..]), BinaryPrimitives.ReadInt64LittleEndian(entry[0x20..])));
        }
        return sections;
    }
}
