using SockShim.Interceptor.Contract;
using System.Text.Json.Nodes;
using SockShim.Interceptor.Weaving;

namespace SockShim.Interceptor.Store;

/// <summary>
/// The woven System.Net.Sockets of every installed runtime, laid out so the .NET host loads it
/// instead of the framework's: a private package store (DOTNET_SHARED_STORE) and, per runtime
/// version, an additional deps file (DOTNET_ADDITIONAL_DEPS) naming it with a file version above
/// the framework's. The host compares the versions written in deps files, not the files, so
/// the woven copy wins only because its deps entry says 10.0.65535.0.
/// </summary>
public sealed class WovenStore(string root)
{
    public const string PackageId = "sockshim.woven.sockets";
    public const string WovenFileVersion = "65535";

    public string Root { get; } = root;
    public string StoreDirectory => Path.Combine(Root, "store");
    public string DepsDirectory => Path.Combine(Root, "deps");

    public static string DefaultRoot =>
        Environment.GetEnvironmentVariable("SOCKSHIM_CACHE") is { Length: > 0 } c ? c
        : Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } x ? x
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "sockshim");

    private static string PackageVersion(InstalledRuntime runtime, Guid mvid) => $"{runtime.Version}-{mvid.ToString("N")[..12]}-w{HookContract.CurrentWeaverVersion}";

    public string AssemblyPath(InstalledRuntime runtime, Guid mvid, string tfm = "net10.0") =>
        Path.Combine(StoreDirectory, "x64", tfm, PackageId, PackageVersion(runtime, mvid), "lib", "net10.0", "System.Net.Sockets.dll");

    public string DepsPath(InstalledRuntime runtime) =>
        Path.Combine(DepsDirectory, "shared", "Microsoft.NETCore.App", runtime.Version, "sockshim.deps.json");

    /// <summary>How a runtime's woven copy was compiled, for status and warnings.</summary>
    public sealed record Prepared(InstalledRuntime Runtime, string AssemblyPath, bool ReadyToRun, bool FromCache, string? Warning);

    /// <summary>Prepares the copy for every runtime an app may roll forward to. Throws
    /// <see cref="WeaveException"/> when a runtime cannot be woven, or when there is none.</summary>
    public IReadOnlyList<Prepared> PrepareAll(Action<string>? progress = null)
    {
        var runtimes = InstalledRuntimes.Find();
        if (runtimes.Count == 0)
            throw new WeaveException($"no Microsoft.NETCore.App runtime under {InstalledRuntimes.DotnetRoot()}/shared; set DOTNET_ROOT to the .NET installation");
        return runtimes.Select(r => Prepare(r, progress)).ToList();
    }

    /// <summary>Weaves (or finds in the cache) the copy for <paramref name="runtime"/>.</summary>
    public Prepared Prepare(InstalledRuntime runtime, Action<string>? progress = null)
    {
        var mvid = runtime.SocketsMvid;
        string target = AssemblyPath(runtime, mvid);
        string marker = target + ".ok";
        if (File.Exists(marker))
        {
            WriteDeps(runtime, mvid);
            bool r2r = File.ReadAllText(marker).Contains("readytorun");
            return new Prepared(runtime, target, r2r, FromCache: true, r2r ? null : "cached IL-only copy (crossgen2 was not available when it was woven)");
        }

        string work = Path.Combine(Root, "tmp", Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(work);
        try
        {
            string il = Path.Combine(work, "System.Net.Sockets.il.dll");
            progress?.Invoke($"weaving {runtime.SocketsPath} (runtime {runtime.Version}, MVID {mvid})");
            SocketsWeaver.Weave(runtime.SocketsPath, il, runtime.Version, step => progress?.Invoke($"  step: {step}"));

            string compiled = Path.Combine(work, "System.Net.Sockets.dll");
            string? warning = null;
            progress?.Invoke($"compiling ReadyToRun with crossgen2 {runtime.Version}");
            var crossgen = Crossgen.Find(runtime.Version, out var why);
            if (crossgen is null || !Crossgen.Compile(crossgen, il, compiled, runtime, out why))
            {
                warning = $"using the IL-only woven assembly, which makes start-up slower (about 30 ms): {why}";
                progress?.Invoke("warning: " + warning);
                File.Copy(il, compiled, overwrite: true);
            }

            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Move(compiled, target, overwrite: true);
            File.WriteAllText(marker, warning is null ? "readytorun" : "il-only");
            WriteDeps(runtime, mvid);
            progress?.Invoke($"ready: {target}");
            return new Prepared(runtime, target, warning is null, FromCache: false, warning);
        }
        finally { Directory.Delete(work, recursive: true); }
    }

    private void WriteDeps(InstalledRuntime runtime, Guid mvid)
    {
        string library = $"{PackageId}/{PackageVersion(runtime, mvid)}";
        var deps = new JsonObject
        {
            ["runtimeTarget"] = new JsonObject { ["name"] = ".NETCoreApp,Version=v10.0" },
            ["targets"] = new JsonObject
            {
                [".NETCoreApp,Version=v10.0"] = new JsonObject
                {
                    [library] = new JsonObject
                    {
                        ["runtime"] = new JsonObject
                        {
                            ["lib/net10.0/System.Net.Sockets.dll"] = new JsonObject
                            {
                                ["assemblyVersion"] = "10.0.0.0",
                                ["fileVersion"] = $"10.0.{WovenFileVersion}.0",
                            },
                        },
                    },
                },
            },
            ["libraries"] = new JsonObject
            {
                [library] = new JsonObject { ["type"] = "package", ["serviceable"] = false, ["sha512"] = "" },
            },
        };
        string path = DepsPath(runtime);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        string text = deps.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true });
        if (!File.Exists(path) || File.ReadAllText(path) != text) File.WriteAllText(path, text);
    }
}
