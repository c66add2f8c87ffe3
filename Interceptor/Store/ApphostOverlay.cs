namespace SockShim.Interceptor.Store;

public sealed partial class AppOverlay
{
    /// <summary>
    /// Where a framework-dependent apphost proved to load the woven copy (Launch.HooklessProof)
    /// starts without the startup hook. `dotnet app.dll` is given a runtimeconfig with startup
    /// hooks off on its command line; an apphost takes no such option, and its host reads the
    /// runtimeconfig and deps.json beside the app's real path. So, as for a self-contained app, a
    /// directory in the cache where the apphost, its dll, that runtimeconfig (hooks off) and the
    /// deps.json are copies, written from the very bytes the proof judged, and every other entry
    /// the proof listed is a link to the app's own file. The process keeps its name and the apphost its
    /// arguments; Environment.ProcessPath and AppContext.BaseDirectory are the copy's (files the
    /// app reads beside itself are found through the links). Keyed like the others (the app
    /// directory, the names the proof listed, the copied files' identities), and found again only
    /// while its copies are byte for byte what the proof judged this launch.
    /// </summary>
    /// <returns>The apphost copy to exec.</returns>
    public static string ForApphost(WovenStore store, Launch.HooklessProof.Proof proof, Action<string>? progress = null)
    {
        string apphost = proof.Apphost ?? throw new ArgumentException("not an apphost's proof", nameof(proof));
        string parent = TrustedPaths.EnsureDirectory(Path.Combine(store.Root, "apps"), 0b111_101_101, check: TrustedPaths.AsRoot, out var problem);
        if (problem is not null) throw new Stack.Claims.UntrustedStateException($"overlay directory {parent}: {problem}");
        string appDirectory = Path.GetDirectoryName(apphost)!, name = Path.GetFileName(apphost);
        string runtimeConfigFile = name + ".runtimeconfig.json", depsFile = name + ".deps.json";
        byte[] runtimeConfig = Launch.HooklessProof.HooksOff(proof.RuntimeConfig);
        string[] copied = proof.Deps is null ? [name, name + ".dll", runtimeConfigFile] : [name, name + ".dll", runtimeConfigFile, depsFile];
        var key = Key($"apphost {appDirectory}", appDirectory, copied, listed: proof.Names);
        string overlay = Path.Combine(parent, key.Name);
        // Taken when its copies are the bytes just judged (compared, not hashed: SHA-256 loaded
        // OpenSSL into the launcher, some 2 ms of every start).
        bool Current() => key.RecordedIn(overlay) && Holds(name, proof.ApphostImage!) && Holds(runtimeConfigFile, runtimeConfig)
                          && (proof.Deps is null ? !Path.Exists(Path.Combine(overlay, depsFile)) : Holds(depsFile, proof.Deps));
        bool Holds(string file, byte[] bytes)
        {
            try { return TrustedPaths.ReadBounded(Path.Combine(overlay, file), bytes.Length + 1).AsSpan().SequenceEqual(bytes); }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return false; }
        }
        if (Current())
        {
            // Marked as used: `sockshim gc --overlays` keeps what a launch just chose.
            try { File.SetLastWriteTimeUtc(Path.Combine(overlay, Marker), DateTime.UtcNow); }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
            return Path.Combine(overlay, name);
        }

        if (Directory.Exists(overlay)) Directory.Delete(overlay, recursive: true); // not what it should be: made again
        progress?.Invoke($"overlay: {overlay}");
        string work = TrustedPaths.NewPrivateDirectory(store.PrivateDirectory, "overlay-");
        try
        {
            // The names the proof judged, and no other (one planted since is neither judged nor linked).
            foreach (var entry in proof.Names)
                if (!copied.Contains(entry) && !IsOverlayFile(entry))
                    File.CreateSymbolicLink(Path.Combine(work, entry), Path.Combine(appDirectory, entry));
            TrustedPaths.WriteNew(Path.Combine(work, name), proof.ApphostImage, 0b111_000_000);
            // The dll's bytes decide nothing of what loads; read bounded, a regular file only.
            TrustedPaths.WriteNew(Path.Combine(work, name + ".dll"), TrustedPaths.ReadBounded(proof.App, MaxExtractedAssembly), 0b110_000_000);
            TrustedPaths.WriteNew(Path.Combine(work, runtimeConfigFile), runtimeConfig, 0b110_000_000);
            if (proof.Deps is not null) TrustedPaths.WriteNew(Path.Combine(work, depsFile), proof.Deps, 0b110_000_000);
            TrustedPaths.WriteNew(Path.Combine(work, Marker), "sockshim overlay\napphost started without the startup hook\n", 0b110_000_000);
            TrustedPaths.WriteNew(Path.Combine(work, KeyFile), key.Bytes, 0b110_000_000);
            try { Directory.Move(work, overlay); }
            catch (IOException) when (Current()) { } // another launch made it first, and it checks out
            work = "";
            return Path.Combine(overlay, name);
        }
        finally
        {
            if (work.Length > 0 && Directory.Exists(work)) Directory.Delete(work, recursive: true);
        }
    }
}
