using System.Security.Cryptography;
using System.Text;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace SockShim.Interceptor.Store;

/// <summary>
/// A self-contained app started with a woven copy of its own System.Net.Sockets, its files
/// untouched: a directory in the cache where every entry of the app's directory is a link to
/// the app's file, except three copies. The app's System.Net.Sockets.dll is the woven copy; the
/// apphost and the app's main dll are copied because the host finds the app's directory from
/// their real paths (a link would lead it back to the app's own directory, and its runtime).
/// The runtime itself then reads every other file through the links.
///
/// An overlay is keyed by what it was made from: the app directory's real path, its list of
/// names, the identity (device, inode, size, change time) of the three files it copies, and the
/// woven copy's SHA-256. A changed app gets a new overlay; one never changes after it is made.
/// </summary>
public sealed unsafe partial class AppOverlay
{
    public const string SocketsFile = "System.Net.Sockets.dll";
    internal const string MarkerFile = ".sockshim-overlay";
    private const string Marker = MarkerFile;
    /// <summary>The framework's largest assembly (System.Private.CoreLib) is some 15 MB, all of
    /// it some 70 MB: bounds for what a bundle's header may make root write out.</summary>
    private const long MaxExtractedAssembly = 64L << 20, MaxExtracted = 1L << 30;

    /// <summary>The apphost to exec in place of the app's.</summary>
    public string Executable { get; }
    /// <summary>The woven copy the app loads, as checked: what the launcher records for the startup hook.</summary>
    public WovenStore.Prepared Sockets { get; }
    public bool FromCache { get; }
    /// <summary>For a trimmed app (see <see cref="Rehosted"/>): the installed runtime its code
    /// runs on, started through that installation's `dotnet` with <see cref="Executable"/> the
    /// app's dll; null for an overlay that starts on the app's own runtime.</summary>
    public InstalledRuntime? RunsOn { get; private init; }

    private AppOverlay(string executable, WovenStore.Prepared sockets, bool fromCache) => (Executable, Sockets, FromCache) = (executable, sockets, fromCache);

    /// <summary>The overlay of the self-contained <paramref name="app"/> (its executable by real
    /// path, the version of the runtime it carries), found in <paramref name="store"/>'s cache or
    /// made there (weaving the app's System.Net.Sockets when no copy of that build is woven yet).</summary>
    public static AppOverlay For(WovenStore store, Launch.DeploymentCheck.SelfContainedApp app, Action<string>? progress = null)
    {
        string parent = TrustedPaths.EnsureDirectory(Path.Combine(store.Root, "apps"), 0b111_101_101, check: TrustedPaths.AsRoot, out var problem);
        if (problem is not null) throw new Stack.Claims.UntrustedStateException($"overlay directory {parent}: {problem}");
        return app.Trimmed ? Rehosted(store, parent, app, progress)
            : app.SingleFile ? Rebundled(store, parent, app, progress) : Linked(store, parent, app, progress);
    }

    /// <summary>A directory of links to the app's files, with the copies. Found again by what it
    /// was made from (the app's folder, names and copied files' identities), so a cached launch
    /// neither hashes nor weaves; the woven copy in it is checked by its recorded hash.</summary>
    private static AppOverlay Linked(WovenStore store, string parent, Launch.DeploymentCheck.SelfContainedApp app, Action<string>? progress)
    {
        string appDirectory = Path.GetDirectoryName(app.Executable)!;
        string name = Path.GetFileName(app.Executable);
        // The runtimeconfig is copied, not linked: it was checked for startup hooks switched off
        // before the start, and a link would let the app's owner switch them off after the check.
        string[] copied = [name, name + ".dll", SocketsFile, name + ".runtimeconfig.json"];
        foreach (var file in copied)
            if (!File.Exists(Path.Combine(appDirectory, file)))
                throw new IOException($"{Path.Combine(appDirectory, file)} is missing: {app.Executable} is not a self-contained app as `dotnet publish` lays one out");

        var key = Key($"linked {appDirectory}", appDirectory, copied);
        string overlay = Path.Combine(parent, key.Name);
        var known = new WovenStore.Prepared(new InstalledRuntime(app.RuntimeVersion, appDirectory), "", ReadyToRun: true, FromCache: true, Warning: null);
        if (RecordedSha(overlay) is { } recorded && Found(overlay, key, SocketsFile, name, known, recorded) is { } found) return found;

        // Its runtimeconfig says startup hooks are on (else it would be rehosted), but that is the
        // owner's word: a trimmed framework whose hook code is compiled out would start it with
        // no check at all. Looked at when the overlay is made (a changed runtimeconfig changes its key).
        if (StartupHooksCompiledOut(Path.Combine(appDirectory, "System.Private.CoreLib.dll")))
            throw new Launch.AppRefusedException($"{app.Executable} runs on a trimmed System.Private.CoreLib without the startup hook's code, though its runtimeconfig.json does not " +
                "switch startup hooks off (changed after publishing?): SockShim could neither install itself nor check that its woven System.Net.Sockets was loaded, so the app would run unpatched. Publish it again");
        var woven = WovenOwn(store, app.RuntimeVersion, appDirectory, progress);
        return Made(store, overlay, key, SocketsFile, name, woven, progress, stage =>
        {
            foreach (var entry in Directory.EnumerateFileSystemEntries(appDirectory))
                if (!copied.Contains(Path.GetFileName(entry)) && !IsOverlayFile(Path.GetFileName(entry)))
                    File.CreateSymbolicLink(Path.Combine(stage, Path.GetFileName(entry)), entry);
            // Read bounded, a regular file only: the app's owner may have made one a FIFO (File.Copy
            // would wait on it for ever) or a link to a device.
            foreach (var (file, mode) in (ReadOnlySpan<(string, UnixFileMode)>)[(name, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute),
                         (name + ".dll", UnixFileMode.UserRead | UnixFileMode.UserWrite), (name + ".runtimeconfig.json", UnixFileMode.UserRead | UnixFileMode.UserWrite)])
            {
                File.WriteAllBytes(Path.Combine(stage, file), TrustedPaths.ReadBounded(Path.Combine(appDirectory, file), MaxExtractedAssembly));
                File.SetUnixFileMode(Path.Combine(stage, file), mode);
            }
            File.Copy(woven.AssemblyPath, Path.Combine(stage, SocketsFile));
        });
    }

    /// <summary>A single-file app: a copy of its bundle whose System.Net.Sockets is the woven
    /// copy of the bundled one (appended; the header rewritten and re-pointed), under a bundle id
    /// of its own, so nothing the original extracted is shared.</summary>
    private static AppOverlay Rebundled(WovenStore store, string parent, Launch.DeploymentCheck.SelfContainedApp app, Action<string>? progress)
    {
        string name = Path.GetFileName(app.Executable);
        var key = Key($"rebundled {app.Executable}", Path.GetDirectoryName(app.Executable)!, [name], names: false);
        string overlay = Path.Combine(parent, key.Name);
        string? marker = RecordedSha(overlay);
        // Found by what it was made from: the bundle is not read or woven again.
        var known = new WovenStore.Prepared(new InstalledRuntime(app.RuntimeVersion, Path.GetDirectoryName(app.Executable)!), "", ReadyToRun: true, FromCache: true, Warning: null);
        if (marker is not null && Found(overlay, key, name, name, known, marker) is { } found) return found;

        string work = TrustedPaths.NewPrivateDirectory(store.PrivateDirectory, "bundle-");
        try
        {
            using var source = new FileStream(app.Executable, FileMode.Open, FileAccess.Read, FileShare.Read);
            var bundle = (Launch.SingleFileBundle.ElfSections(source) is { } sections ? Launch.SingleFileBundle.Read(source, sections) : null)
                ?? throw new IOException($"{app.Executable} is no longer a single-file bundle");
            // The weaver resolves System.Net.Sockets' references from the directory it is in: the
            // bundled assemblies are written out for it, in this account's private directory.
            string extracted = Directory.CreateDirectory(Path.Combine(work, "extracted")).FullName;
            string runtime = Directory.CreateDirectory(Path.Combine(work, "runtime")).FullName;
            progress?.Invoke($"reading the bundle of {app.Executable} ({bundle.Files.Count} files)");
            // What the header declares is checked before anything is written: a forged size (a
            // sparse file, or a deflate stream inflating a thousandfold) must not fill root's
            // disk. An assembly larger than any of the framework's is not one the weaver needs.
            var needed = bundle.Files.Where(e => e.Type == Launch.SingleFileBundle.FileType.Assembly && !e.Path.Contains('/') && e.Path is not ("." or "..")
                                                 && e.Path.EndsWith(".dll") && e.Size <= MaxExtractedAssembly).ToList();
            if (needed.Sum(e => e.Size) is var total && total > MaxExtracted)
                throw new InvalidDataException($"its bundled assemblies declare {total} bytes, more than SockShim writes out to weave one ({MaxExtracted}): a damaged or forged bundle");
            foreach (var entry in needed)
                using (var file = new FileStream(Path.Combine(extracted, entry.Path), FileMode.Create, FileAccess.Write))
                    Launch.SingleFileBundle.Extract(source, entry, file);
            if (!File.Exists(Path.Combine(extracted, SocketsFile))) throw new IOException($"{app.Executable} bundles no {SocketsFile}");
            string inputs = CopyWeaveInputs(extracted, runtime);
            if (StartupHooksCompiledOut(Path.Combine(runtime, "System.Private.CoreLib.dll")))
                throw new Launch.AppRefusedException($"{app.Executable} bundles a trimmed System.Private.CoreLib without the startup hook's code, though its runtimeconfig.json does not " +
                    "switch startup hooks off: SockShim could neither install itself nor check that its woven System.Net.Sockets was loaded, so the app would run unpatched. Publish it again");
            // The weaver stamps the source's time: the bundle's, so one bundle weaves to one copy.
            File.SetLastWriteTimeUtc(Path.Combine(runtime, SocketsFile), File.GetLastWriteTimeUtc(app.Executable));
            var woven = store.Woven(new InstalledRuntime(app.RuntimeVersion, runtime) { SourceSha256 = inputs }, progress);
            byte[] replacement = File.ReadAllBytes(woven.AssemblyPath);
            if (Convert.ToHexString(SHA256.HashData(replacement)).ToLowerInvariant() != woven.Sha256) throw new IOException($"{woven.AssemblyPath} changed while it was read");
            return Made(store, overlay, key, name, name, woven, progress, stage =>
            {
                string copy = Path.Combine(stage, name);
                using (var target = new FileStream(copy, FileMode.CreateNew, FileAccess.ReadWrite))
                    bundle.Write(source, target, SocketsFile, replacement, $"{bundle.BundleId}-sockshim-{woven.Sha256[..8]}");
                File.SetUnixFileMode(copy, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            });
        }
        finally { if (Directory.Exists(work)) Directory.Delete(work, recursive: true); }
    }

    /// <summary>The woven copy of the System.Net.Sockets.dll in the app's <paramref name="directory"/>,
    /// keyed by the content of every assembly its weave reads. The app's owner can give a file of
    /// theirs any version, MVID, length and time, those of another app's file included: keyed by
    /// those alone, a copy woven from their file was what root's later run of that other app got.
    /// Keyed by System.Net.Sockets alone, the same held for the rest of the folder (the third
    /// review): the weaver resolves its references there and crossgen2 compiles against every one
    /// of them (inlining their code), so another account's app with an identical
    /// System.Net.Sockets.dll and a System.Private.CoreLib of its own chose the compiled copy root's
    /// own app loaded. Each assembly is copied into a private directory first (bounded, a regular
    /// file only: a FIFO would hang the weave) and the weave reads the copies it hashed, so nothing
    /// can change between the hash and the reads.</summary>
    private static WovenStore.Prepared WovenOwn(WovenStore store, string version, string directory, Action<string>? progress)
    {
        string source = TrustedPaths.NewPrivateDirectory(store.PrivateDirectory, "source-");
        try
        {
            string inputs = CopyWeaveInputs(directory, source);
            // The weaver stamps the source's time, which the startup hook compares with the app's file.
            File.SetLastWriteTimeUtc(Path.Combine(source, SocketsFile), File.GetLastWriteTimeUtc(Path.Combine(directory, SocketsFile)));
            return store.Woven(new InstalledRuntime(version, source) { SourceSha256 = inputs }, progress);
        }
        finally { Directory.Delete(source, recursive: true); }
    }

    /// <summary>Copies into the private <paramref name="to"/> what a weave of
    /// <paramref name="from"/>'s System.Net.Sockets.dll reads, and returns one SHA-256 of it
    /// (names and contents, in name order): that assembly and every one it references,
    /// transitively, with the contracts the weaver adds references to. The weaver resolves types
    /// among them and crossgen2 compiles against all of them (`-r`), so they alone are its
    /// inputs, and an app's own assemblies, which nothing of the framework references, neither
    /// key nor change the copy (apps of one runtime build share it). Each is read once, bounded
    /// and a regular file only; its references are read from the bytes written.</summary>
    private static string CopyWeaveInputs(string from, string to)
    {
        var pending = new Queue<string>(["System.Net.Sockets", "System.Private.CoreLib", .. Contract.HookContract.AddedReferences]);
        var copied = new SortedDictionary<string, string>(StringComparer.Ordinal);
        while (pending.TryDequeue(out var name))
        {
            string file = name + ".dll";
            if (copied.ContainsKey(file) || name.Contains('/') || name is "." or ".." || !File.Exists(Path.Combine(from, file))) continue;
            byte[] bytes = TrustedPaths.ReadBounded(Path.Combine(from, file), MaxExtractedAssembly);
            File.WriteAllBytes(Path.Combine(to, file), bytes);
            copied[file] = Convert.ToHexString(SHA256.HashData(bytes));
            try
            {
                using var pe = new System.Reflection.PortableExecutable.PEReader(new MemoryStream(bytes));
                var md = System.Reflection.Metadata.PEReaderExtensions.GetMetadataReader(pe);
                foreach (var reference in md.AssemblyReferences) pending.Enqueue(md.GetString(md.GetAssemblyReference(reference).Name));
            }
            catch (Exception ex) when (ex is BadImageFormatException or InvalidOperationException) { } // not an assembly: nothing it references is read
        }
        if (!copied.ContainsKey(SocketsFile)) throw new IOException($"{Path.Combine(from, SocketsFile)} is missing");
        var text = new StringBuilder();
        foreach (var (file, sha) in copied) text.Append(file).Append(' ').Append(sha).Append('\n');
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString()))).ToLowerInvariant();
    }

    /// <summary>Whether <paramref name="coreLib"/> (an app's own) was trimmed with startup hooks
    /// switched off: the trimmer then removes StartupHookProvider.ProcessStartupHooks, which the
    /// runtime calls to run them. Unreadable counts as compiled out (refused, not run unchecked).</summary>
    internal static bool StartupHooksCompiledOut(string coreLib)
    {
        try
        {
            using var pe = new System.Reflection.PortableExecutable.PEReader(new MemoryStream(TrustedPaths.ReadBounded(coreLib, MaxExtractedAssembly)));
            var md = System.Reflection.Metadata.PEReaderExtensions.GetMetadataReader(pe);
            foreach (var handle in md.TypeDefinitions)
            {
                var type = md.GetTypeDefinition(handle);
                if (md.GetString(type.Name) != "StartupHookProvider" || md.GetString(type.Namespace) != "System") continue;
                return !type.GetMethods().Any(m => md.GetString(md.GetMethodDefinition(m).Name) == "ProcessStartupHooks");
            }
            return true;
        }
        catch (Exception ex) when (ex is IOException or BadImageFormatException or InvalidOperationException) { return true; }
    }

    /// <summary>An overlay made before and still as it was made, or null.</summary>
    private static AppOverlay? Found(string overlay, OverlayKey key, string checkedFile, string executable, WovenStore.Prepared woven, string? sha256 = null)
    {
        sha256 ??= woven.Sha256;
        if (!key.RecordedIn(overlay)) return null;
        if (Check(overlay, sha256, checkedFile) is not { } identity) return null;
        // Marked as used (one system call): `sockshim gc --overlays` keeps what a launch just chose.
        try { File.SetLastWriteTimeUtc(Path.Combine(overlay, Marker), DateTime.UtcNow); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
        var prepared = woven with
        {
            AssemblyPath = Path.Combine(overlay, checkedFile), Identity = identity, Sha256 = sha256, FromCache = true,
        };
        return new AppOverlay(Path.Combine(overlay, executable), prepared, fromCache: true);
    }

    /// <summary>Makes an overlay in a private directory (<paramref name="fill"/> writes its files),
    /// records the checked file's hash, and moves it into place.</summary>
    private static AppOverlay Made(WovenStore store, string overlay, OverlayKey key, string checkedFile, string executable, WovenStore.Prepared woven, Action<string>? progress, Action<string> fill)
    {
        if (Directory.Exists(overlay)) Directory.Delete(overlay, recursive: true); // not what it should be: made again
        progress?.Invoke($"overlay: {overlay}");
        string work = TrustedPaths.NewPrivateDirectory(store.PrivateDirectory, "overlay-");
        try
        {
            fill(work);
            var (sha, identity) = TrustedPaths.Hash(Path.Combine(work, checkedFile));
            TrustedPaths.WriteNew(Path.Combine(work, Marker), $"sockshim overlay\nsha256 {sha}\nidentity {identity}\nwoven {woven.Sha256}\n", 0b110_000_000);
            TrustedPaths.WriteNew(Path.Combine(work, KeyFile), key.Bytes, 0b110_000_000);
            try { Directory.Move(work, overlay); }
            catch (IOException) when (Found(overlay, key, checkedFile, executable, woven, sha) is { } theirs)
            {
                return theirs; // another launch made it first, and it checks out
            }
            work = "";
            return new AppOverlay(Path.Combine(overlay, executable), woven with { AssemblyPath = Path.Combine(overlay, checkedFile), Identity = identity, Sha256 = sha, FromCache = false }, fromCache: false);
        }
        finally
        {
            if (work.Length > 0 && Directory.Exists(work)) Directory.Delete(work, recursive: true);
        }
    }

    private static bool IsOverlayFile(string name) => name is Marker or KeyFile;

    private static string? RecordedSha(string overlay)
    {
        string marker = Path.Combine(overlay, Marker);
        return File.Exists(marker) ? File.ReadLines(marker).FirstOrDefault(l => l.StartsWith("sha256 "))?[7..].Trim() : null;
    }

    /// <summary>The woven copy's identity in a complete overlay whose copy still has
    /// <paramref name="sha256"/>: unchanged since the marker recorded it (same identity), or
    /// hashed again when the identity moved; null when the overlay is missing or not what it
    /// should be.</summary>
    private static string? Check(string overlay, string sha256, string checkedFile)
    {
        string marker = Path.Combine(overlay, Marker), copy = Path.Combine(overlay, checkedFile);
        if (!File.Exists(marker)) return null;
        var lines = File.ReadAllLines(marker);
        if (lines.FirstOrDefault(l => l.StartsWith("sha256 "))?[7..].Trim() != sha256) return null;
        string? recorded = lines.FirstOrDefault(l => l.StartsWith("identity "))?[9..].Trim();
        try
        {
            if (recorded is not null && TrustedPaths.IdentityOf(copy) == recorded) return recorded;
            return TrustedPaths.Hash(copy) is var (sha, identity) && sha == sha256 ? identity : null;
        }
        catch (IOException) { return null; }
    }

    /// <summary>Device, inode, size and change time of the file a name leads to: rewriting or
    /// replacing it changes one of them (the change time only root can set back).</summary>
    private static string Identity(string path)
    {
        stat st;
        int result;
        fixed (byte* p = Encoding.UTF8.GetBytes(path + "\0")) result = LibC.stat(p, &st);
        if (result != 0) throw new IOException($"{path} cannot be read: {System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage(errno)}");
        return $"{(ulong)st.st_dev}:{(ulong)st.st_ino}:{(long)st.st_size}:{(long)st.st_ctim.tv_sec}.{(long)st.st_ctim.tv_nsec:D9}";
    }
}
