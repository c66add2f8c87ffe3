using SockShim.Interceptor.Contract;
using SockShim.Interceptor.Weaving;
using SockShim.Stack.Interop;

namespace SockShim.Interceptor.Store;

/// <summary>
/// The woven System.Net.Sockets of every installed runtime, laid out so the .NET host loads it
/// instead of the framework's: a private package store (DOTNET_SHARED_STORE) and, per runtime
/// version, an additional deps file (DOTNET_ADDITIONAL_DEPS) naming it with a file version above
/// the framework's. The host compares the versions written in deps files, not the files, so
/// the woven copy wins only because its deps entry says 10.0.65535.0.
/// </summary>
public sealed class WovenStore(string root, WovenStore.Weaver? weaver, WovenStore.Rewriter? rewriter = null)
{
    /// <summary>Weaves <paramref name="runtime"/>'s System.Net.Sockets into <paramref
    /// name="compiled"/> inside the private <paramref name="work"/> directory; null, or the
    /// warning that it is IL only. Passed in, so a launcher that must start in milliseconds
    /// (Native AOT, without Mono.Cecil) can use the cache and leave weaving to the tool.</summary>
    public delegate string? Weaver(InstalledRuntime runtime, Guid mvid, string work, string compiled, Action<string>? progress);

    /// <summary>Writes a trimmed app's <paramref name="source"/> assembly to <paramref name="target"/>
    /// so it loads on the full framework in <paramref name="frameworkDirectory"/>; the methods it
    /// added (see <see cref="AppOverlay"/>'s rehosted apps). Null in the fast launcher, as the weaver is.</summary>
    public delegate IReadOnlyList<string> Rewriter(string source, string frameworkDirectory, string target);

    /// <summary>What a store may do besides using its cache: weave, and complete a trimmed app.</summary>
    public sealed record Tools(Weaver Weave, Rewriter Rewrite);

    /// <summary>A store with <paramref name="tools"/>, or (null) one that only uses the cache.</summary>
    public WovenStore(string root, Tools? tools) : this(root, tools?.Weave, tools?.Rewrite) { }

    /// <summary>The rewriter, or <see cref="WeavingNeededException"/> in a store made without one.</summary>
    internal Rewriter RewriterOrHandOver(string why) => rewriter ?? throw new WeavingNeededException(why);

    public const string PackageId = "sockshim.woven.sockets";
    public const string WovenFileVersion = "65535";
    /// <summary>The versions the woven copy's deps entry gives it: the host prefers it to the
    /// framework's own entry only while that one is below both.</summary>
    public const string WovenAssemblyVersion = "10.0.0.0", WovenFileVersionText = "10.0." + WovenFileVersion + ".0";

    private string? _root;

    /// <summary>The cache's canonical path, made when missing. As root it must be root's and
    /// writable by no other account, with every directory above it: another account could
    /// otherwise put its own code into every app root starts under SockShim.</summary>
    public string Root => _root ??= OpenRoot(root);
    public string StoreDirectory => Path.Combine(Root, "store");
    public string DepsDirectory => Path.Combine(Root, "deps");

    /// <summary>This account's private working directory in the cache (mode 0700): weaving,
    /// crossgen2's restore and `dotnet test`'s runsettings happen there, never in a shared
    /// temporary directory.</summary>
    public string PrivateDirectory => TrustedPaths.PrivateDirectory(Path.Combine(Root, "tmp"));

    /// <summary>The copies checked against their recorded hash by <see cref="Prepare"/>, by
    /// runtime version: what the launcher tells the startup hook to expect.</summary>
    public IReadOnlyDictionary<string, Prepared> Verified => _verified;
    private readonly Dictionary<string, Prepared> _verified = new();

    private static string OpenRoot(string given)
    {
        string canonical = TrustedPaths.EnsureDirectory(given, 0b111_101_101, check: TrustedPaths.AsRoot, out var problem);
        if (problem is null) return canonical;
        string full = Path.GetFullPath(given);
        string where = problem.Path == canonical ? $"is {problem.Reason}" : $"is under {problem.Path}, which is {problem.Reason}";
        throw new Stack.Claims.UntrustedStateException(
            $"cache {full} {where}; as root SockShim uses only a cache that root owns and no other account can write, nor any directory above it " +
            "(its woven assemblies are loaded into every app root starts): set SOCKSHIM_CACHE (or --cache) to one such as /var/cache/sockshim, or run as that user");
    }

    public static string DefaultRoot =>
        Environment.GetEnvironmentVariable("SOCKSHIM_CACHE") is { Length: > 0 } c ? c
        : Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } x ? x
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "sockshim");

    // The woven copy carries its source's version, MVID, length and change time (StampIdentity),
    // which the startup hook compares with the file beside the app's runtime: a self-contained
    // app's copy of the same build may differ from the installed runtime's in time alone.
    private static string PackageVersion(InstalledRuntime runtime, Guid mvid) => $"{runtime.Version}-{mvid.ToString("N")[..12]}-{runtime.SourceStamp}-w{HookContract.CurrentWeaverVersion}";

    public string AssemblyPath(InstalledRuntime runtime, Guid mvid, string tfm = "net10.0") =>
        Path.Combine(StoreDirectory, "x64", tfm, PackageId, PackageVersion(runtime, mvid), "lib", "net10.0", "System.Net.Sockets.dll");

    public string DepsPath(InstalledRuntime runtime) =>
        Path.Combine(DepsDirectory, "shared", "Microsoft.NETCore.App", runtime.Version, "sockshim.deps.json");

    /// <summary>How a runtime's woven copy was compiled, for status and warnings; its SHA-256 and
    /// identity (inode, size, change time) as checked.</summary>
    public sealed record Prepared(InstalledRuntime Runtime, string AssemblyPath, bool ReadyToRun, bool FromCache, string? Warning, string Sha256 = "", string Identity = "");

    /// <summary>Prepares the copy for every runtime an app may roll forward to. Throws
    /// <see cref="WeaveException"/> when a runtime cannot be woven, or when there is none.</summary>
    public IReadOnlyList<Prepared> PrepareAll(Action<string>? progress = null)
    {
        var runtimes = InstalledRuntimes.Find();
        if (runtimes.Count == 0)
            throw new WeaveException($"no Microsoft.NETCore.App runtime under {InstalledRuntimes.DotnetRoot()}/shared; set DOTNET_ROOT to the .NET installation");
        return runtimes.Select(r => Prepare(r, progress)).ToList();
    }

    /// <summary>Weaves (or finds in the cache) the copy for <paramref name="runtime"/>. A cached
    /// copy is used only when its bytes still have the SHA-256 recorded when it was woven;
    /// otherwise it is woven again, with a warning.</summary>
    public Prepared Prepare(InstalledRuntime runtime, Action<string>? progress = null)
    {
        // Read once: each read of the MVID parses the runtime's System.Net.Sockets.dll headers.
        var mvid = runtime.SocketsMvid;
        var prepared = Woven(runtime, mvid, progress, installed: true);
        WriteDeps(runtime, mvid);
        return Remember(prepared);
    }

    /// <summary>The woven copy of <paramref name="runtime"/>'s System.Net.Sockets, checked or
    /// made, keyed by its version and MVID; nothing points the host at it yet. A self-contained
    /// app's own runtime (its directory) is woven through this too: see <see cref="AppOverlay"/>.</summary>
    public Prepared Woven(InstalledRuntime runtime, Action<string>? progress = null) => Woven(runtime, runtime.SocketsMvid, progress);

    private Prepared Woven(InstalledRuntime runtime, Guid mvid, Action<string>? progress, bool installed = false)
    {
        string target = AssemblyPath(runtime, mvid);
        string marker = target + ".ok";
        string? changed = null;
        if (ReadMarker(marker) is var (kind, recorded, recordedIdentity))
        {
            // The file as it was hashed (same inode, size and change time) is not read again:
            // hashing it cost every launch about 40 ms (OpenSSL's start and the read).
            var (sha, identity) = recordedIdentity is not null && IdentityOrNothing(target) == recordedIdentity ? (recorded, recordedIdentity) : HashOrNothing(target);
            if (sha == recorded)
            {
                // Same bytes, another identity (touched, or a marker from before identities):
                // recorded now, so the next launch need not hash it.
                if (identity != recordedIdentity) WriteMarker(marker, kind, sha, identity);
                bool r2r = kind == "readytorun";
                return new Prepared(runtime, target, r2r, FromCache: true, r2r ? null : "cached IL-only copy (crossgen2 was not available when it was woven)", sha, identity);
            }
            changed = $"the cached {target} is not what was woven (SHA-256 {recorded[..16]}... recorded, {(sha is null ? "file unreadable" : sha[..16] + "... found")}): woven again";
            progress?.Invoke("warning: " + changed);
            File.Delete(marker);
        }

        if (weaver is null) throw new WeavingNeededException($"runtime {runtime.Version}'s System.Net.Sockets is not woven in {Root} yet{(changed is null ? "" : $" ({changed})")}");
        if (installed && TrustedPaths.AsRoot) CheckInstalledRuntime(runtime);
        string work = TrustedPaths.NewPrivateDirectory(PrivateDirectory, "weave-");
        try
        {
            string compiled = Path.Combine(work, "System.Net.Sockets.dll");
            string? warning = weaver(runtime, mvid, work, compiled, progress);
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Move(compiled, target, overwrite: true);
            var (sha, identity) = TrustedPaths.Hash(target);
            WriteMarker(marker, warning is null ? "readytorun" : "il-only", sha, identity);
            progress?.Invoke($"ready: {target}");
            string? told = changed is null ? warning : warning is null ? changed : $"{changed}; {warning}";
            return new Prepared(runtime, target, warning is null, FromCache: false, told, sha, identity);
        }
        finally { Directory.Delete(work, recursive: true); }
    }

    /// <summary>As root, an installed runtime (found through DOTNET_ROOT, or the `dotnet` on PATH,
    /// both the caller's environment) is woven only when it, every directory above it and every
    /// file in it are root's and no other account can write them: its copy is kept under the
    /// runtime's version, MVID and stamp, which another account's copy of the runtime can match,
    /// and every later run of root's on the real runtime would load it. An app's own runtime
    /// (an overlay) is keyed by its content's hash and serves only that app.</summary>
    private static void CheckInstalledRuntime(InstalledRuntime runtime)
    {
        string directory = HostPaths.Canonical(runtime.Directory) ?? runtime.Directory;
        string source = HostPaths.Canonical(runtime.SocketsPath) ?? runtime.SocketsPath;
        if ((HostPaths.Problem(directory) ?? TrustedPaths.EntriesProblem(directory) ?? HostPaths.Problem(source, leafIsFile: true)) is { } problem)
            throw new Stack.Claims.UntrustedStateException(
                $"runtime {runtime.Version} in {runtime.Directory}: {problem}; as root SockShim weaves only a .NET runtime that root owns and no other account can write, " +
                "nor any directory above it (its woven System.Net.Sockets is kept in root's cache for root's later runs): point DOTNET_ROOT at root's own .NET installation, or unset it");
    }

    private Prepared Remember(Prepared prepared) => _verified[prepared.Runtime.Version] = prepared;

    /// <summary>The kind, SHA-256 and file identity a marker records; null when there is none, or
    /// it is from a version that recorded no hash (then the copy is woven again). The identity
    /// is null in markers written before it was recorded (then the file is hashed).</summary>
    private static (string Kind, string Sha256, string? Identity)? ReadMarker(string marker)
    {
        if (!File.Exists(marker)) return null;
        var lines = File.ReadAllLines(marker);
        string? sha = lines.FirstOrDefault(l => l.StartsWith("sha256 "))?[7..].Trim();
        string? identity = lines.FirstOrDefault(l => l.StartsWith("identity "))?[9..].Trim();
        return sha is { Length: 64 } ? (lines[0].Trim(), sha, identity) : null;
    }

    private static void WriteMarker(string marker, string kind, string sha, string identity) =>
        TrustedPaths.Replace(marker, $"{kind}\nsha256 {sha}\nidentity {identity}\n", 0b110_100_100);

    private static string? IdentityOrNothing(string path)
    {
        try { return TrustedPaths.IdentityOf(path); }
        catch (IOException) { return null; }
    }

    private static (string? Sha256, string Identity) HashOrNothing(string path)
    {
        try { return TrustedPaths.Hash(path); }
        catch (IOException) { return (null, ""); } // missing, or not a plain file: woven again
    }

    private void WriteDeps(InstalledRuntime runtime, Guid mvid)
    {
        string library = $"{PackageId}/{PackageVersion(runtime, mvid)}";
        // The text System.Text.Json wrote (indented, no final newline), written out here: building
        // it with JsonObject on every `sockshim run` cost the launcher 0.3 ms. A name that would
        // need escaping never reaches it.
        if (!library.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '/' or '_'))
            throw new InvalidOperationException($"the woven package name '{library}' has characters a deps file would have to escape");
        string text = $$"""
            {
              "runtimeTarget": {
                "name": ".NETCoreApp,Version=v10.0"
              },
              "targets": {
                ".NETCoreApp,Version=v10.0": {
                  "{{library}}": {
                    "runtime": {
                      "lib/net10.0/System.Net.Sockets.dll": {
                        "assemblyVersion": "{{WovenAssemblyVersion}}",
                        "fileVersion": "{{WovenFileVersionText}}"
                      }
                    }
                  }
                }
              },
              "libraries": {
                "{{library}}": {
                  "type": "package",
                  "serviceable": false,
                  "sha512": ""
                }
              }
            }
            """;
        string path = DepsPath(runtime);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        if (!File.Exists(path) || File.ReadAllText(path) != text) TrustedPaths.Replace(path, text, 0b110_100_100);
    }
}

/// <summary>A copy has to be woven, and this store was made without a weaver (the fast
/// launcher): the managed tool does it.</summary>
public sealed class WeavingNeededException(string message) : Exception(message);
