using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using SockShim.Stack.Interop;

namespace SockShim.Interceptor.Store;

/// <summary>An installed Microsoft.NETCore.App runtime and its System.Net.Sockets.dll.</summary>
public sealed record InstalledRuntime(string Version, string Directory)
{
    public string SocketsPath => Path.Combine(Directory, "System.Net.Sockets.dll");

    /// <summary>The MVID of the runtime's own System.Net.Sockets: it changes with every build,
    /// so it (with the version) keys the woven cache.</summary>
    public Guid SocketsMvid => ReadMvid(SocketsPath);

    /// <summary>For an app's own runtime (see <see cref="AppOverlay"/>), one SHA-256 of everything its
    /// weave reads: its System.Net.Sockets.dll and every assembly of the app's it references,
    /// transitively, which the weaver and crossgen2 resolve against. Version, MVID, length and time are all the files' own word,
    /// which their owner can give any value, so a copy woven from an app's files is found again
    /// only by their content.</summary>
    public string? SourceSha256 { get; init; }

    /// <summary>What the weaver stamps of the source file besides version and MVID (its length
    /// and last write time), and for an app's own runtime its content, shortened: two copies of
    /// one build can differ in it. An installed runtime's is the two numbers in hex with an x
    /// between (no hex digit), not a hash of them: hashing them on every launch loaded OpenSSL
    /// into the launcher, milliseconds of each app's start. An app's own copy keeps the hash: its file's owner chooses all three
    /// values, and only a cryptographic hash keeps two such keys apart.</summary>
    public string SourceStamp
    {
        get
        {
            var file = SourceFile(SocketsPath);
            if (SourceSha256 is null) return $"{file.Length:x}x{file.LastWriteTimeUtc.Ticks:x}";
            string stamp = $"{file.Length}:{file.LastWriteTimeUtc.Ticks}:{SourceSha256}";
            return Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.ASCII.GetBytes(stamp)))[..16].ToLowerInvariant();
        }
    }

    /// <summary>The file a runtime's System.Net.Sockets.dll path leads to (links followed): what
    /// its stamp and the weaver's literals describe, and what the app's check stats. FileInfo's
    /// Length of a link is the link's own.</summary>
    public static FileInfo SourceFile(string path)
    {
        var given = new FileInfo(path);
        return given.ResolveLinkTarget(returnFinalTarget: true) as FileInfo ?? given;
    }

    public static Guid ReadMvid(string path)
    {
        using var stream = File.OpenRead(path);
        using var pe = new PEReader(stream);
        var md = pe.GetMetadataReader();
        return md.GetGuid(md.GetModuleDefinition().Mvid);
    }
}

/// <summary>Finds the shared runtimes of the dotnet installation this process runs on (or
/// DOTNET_ROOT's), so every one an app may roll forward to is woven.</summary>
public static class InstalledRuntimes
{
    public static string DotnetRoot()
    {
        if (Environment.GetEnvironmentVariable("DOTNET_ROOT") is { Length: > 0 } root && Directory.Exists(Path.Combine(root, "shared")))
            return root;
        // The framework this process runs on (the host names its deps file):
        // .../shared/Microsoft.NETCore.App/<version>/ → the installation root.
        if (AppContext.GetData("FX_DEPS_FILE") is string deps && Path.GetDirectoryName(deps) is { Length: > 0 } runtimeDir)
            return Path.GetFullPath(Path.Combine(runtimeDir, "..", "..", ".."));
        // None in a Native AOT process (the fast launcher): the installation of the `dotnet` on
        // PATH, the one it hands the managed tool to and apps are started with. As root, only one
        // root owns alone: it would otherwise read another account's files as the runtime's.
        string? dotnet = Launch.Exec.Resolve("dotnet", Environment.GetEnvironmentVariable("PATH"));
        if (dotnet is null) return "/usr/share/dotnet";
        string muxer = HostPaths.Canonical(dotnet) ?? Path.GetFullPath(dotnet);
        if (TrustedPaths.AsRoot && HostPaths.Problem(muxer, leafIsFile: true) is { } problem)
            throw new Stack.Claims.UntrustedStateException(
                $"{problem}; as root SockShim uses only a .NET installation root owns and no other account can write, nor any directory above it: put root's .NET installation first on PATH");
        return Path.GetDirectoryName(muxer)!;
    }

    /// <summary>As root, what in the .NET installation <paramref name="root"/> (a muxer's directory)
    /// another account could change among the folders <paramref name="within"/> ("" for all of
    /// it): the muxer loads host/fxr, the host the shared runtimes, a restore the SDK, its
    /// manifests and packs. A root-owned installation may hold another account's folder (the
    /// fourth review: its libhostfxr.so ran as root), so the muxer alone is not enough; each
    /// folder, every directory above it and everything in it must be root's alone (links
    /// refused). Null when nothing is wrong or not as root.</summary>
    internal static Untrusted? InstallationProblem(string root, params string[] within)
    {
        if (!TrustedPaths.AsRoot) return null;
        foreach (var folder in within)
        {
            string path = folder.Length == 0 ? root : Path.Combine(root, folder);
            if (!Directory.Exists(path) && new FileInfo(path).LinkTarget is null) continue;
            if ((HostPaths.Problem(path) ?? TrustedPaths.EntriesProblem(path)) is { } problem) return problem;
        }
        return null;
    }

    /// <summary>Each runtime by the path the kernel resolves now, every link followed: what is
    /// checked and read later (as root, before weaving) goes through it, so a link on the way
    /// (DOTNET_ROOT may lead through one another account owns) cannot be re-pointed between the
    /// check and the reads.</summary>
    public static IReadOnlyList<InstalledRuntime> Find(string? dotnetRoot = null)
    {
        if (HostPaths.Canonical(Path.Combine(dotnetRoot ?? DotnetRoot(), "shared", "Microsoft.NETCore.App")) is not { } dir || !Directory.Exists(dir)) return [];
        return Directory.GetDirectories(dir)
            .Select(d => HostPaths.Canonical(d) is { } canonical ? new InstalledRuntime(Path.GetFileName(d), canonical) : null)
            .OfType<InstalledRuntime>()
            .Where(r => File.Exists(r.SocketsPath) && Version.TryParse(r.Version.Split('-')[0], out _))
            .OrderBy(r => Version.Parse(r.Version.Split('-')[0]))
            .ToList();
    }
}
