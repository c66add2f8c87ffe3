using SockShim.Interceptor.Store;

namespace SockShim.Interceptor.Weaving;

/// <summary>What the woven store does to make a copy: weave the runtime's System.Net.Sockets,
/// then compile it ReadyToRun with the runtime's own crossgen2 (IL only, with a warning, when
/// crossgen2 cannot be had).</summary>
internal static class StoreWeaver
{
    /// <summary>Weaving, and completing a trimmed app's assemblies: the managed tool's store.</summary>
    public static readonly WovenStore.Tools Tools = new(Weave, TrimmedMembers.Complete);

    public static string? Weave(InstalledRuntime runtime, Guid mvid, string work, string compiled, Action<string>? progress)
    {
        string il = Path.Combine(work, "System.Net.Sockets.il.dll");
        progress?.Invoke($"weaving {runtime.SocketsPath} (runtime {runtime.Version}, MVID {mvid})");
        SocketsWeaver.Weave(runtime.SocketsPath, il, runtime.Version, step => progress?.Invoke($"  step: {step}"));
        progress?.Invoke($"compiling ReadyToRun with crossgen2 {runtime.Version}");
        var crossgen = Crossgen.Find(runtime.Version, Path.GetDirectoryName(work)!, out var why);
        if (crossgen is not null && Crossgen.Compile(crossgen, il, compiled, runtime, out why)) return null;
        string warning = $"using the IL-only woven assembly, which makes start-up slower (about 30 ms): {why}";
        progress?.Invoke("warning: " + warning);
        File.Copy(il, compiled, overwrite: true);
        return warning;
    }
}
