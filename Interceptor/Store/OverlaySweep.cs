namespace SockShim.Interceptor.Store;

/// <summary>
/// `sockshim gc --overlays`: removes the app overlays of this account's cache (apps/KEY, see
/// <see cref="AppOverlay"/>) that nothing uses. An overlay is a cache entry: the next run of its
/// app makes it again (a rebundled copy is some 70 MB). One is kept while a live process runs
/// from it (its executable, or a file it maps, lies in the overlay: the apphost or bundle copy,
/// the woven System.Net.Sockets, a trimmed app's dll) and while a launch used it in the last
/// <see cref="Idle"/> (each launch marks its overlay's marker as used, so one about to exec its
/// copy is not taken away from under it).
/// </summary>
public static class OverlaySweep
{
    /// <summary>How long after its last launch an overlay is kept even when no process runs from it.</summary>
    public static readonly TimeSpan Idle = TimeSpan.FromMinutes(10);

    /// <summary>The overlays removed, and those kept because a process runs from them (by pid).</summary>
    public sealed record Report(List<string> Removed, List<(string Overlay, int Pid)> InUse, List<string> Problems);

    public static Report Sweep(string cacheRoot, DateTime nowUtc)
    {
        var report = new Report([], [], []);
        string apps = Path.Combine(cacheRoot, "apps");
        if (!Directory.Exists(apps)) return report;
        var used = UsedBy(apps);
        foreach (var overlay in Directory.EnumerateDirectories(apps))
        {
            if (new DirectoryInfo(overlay).LinkTarget is not null) continue; // not one this cache made
            string marker = Path.Combine(overlay, AppOverlay.MarkerFile);
            // Without a marker: a copy made before markers existed, or a damaged one; its age is the directory's.
            var lastUse = File.Exists(marker) ? File.GetLastWriteTimeUtc(marker) : Directory.GetLastWriteTimeUtc(overlay);
            if (used.TryGetValue(overlay, out int pid)) report.InUse.Add((overlay, pid));
            else if (nowUtc - lastUse < Idle) continue;
            else
            {
                // The links inside are removed, never what they lead to (the app's own files).
                try { Directory.Delete(overlay, recursive: true); report.Removed.Add(overlay); }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { report.Problems.Add($"{overlay}: {ex.Message}"); }
            }
        }
        return report;
    }

    // Overlay directory → a pid running from it: each process's executable and mapped files
    // (those of other accounts are unreadable here, and cannot run from this account's private
    // overlays anyway).
    private static Dictionary<string, int> UsedBy(string apps)
    {
        var used = new Dictionary<string, int>(StringComparer.Ordinal);
        string prefix = apps + "/";
        void Note(string? path, int pid)
        {
            if (path is null || !path.StartsWith(prefix, StringComparison.Ordinal)) return;
            int end = path.IndexOf('/', prefix.Length);
            used.TryAdd(end < 0 ? path : path[..end], pid);
        }
        foreach (var entry in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(entry), out int pid)) continue;
            try
            {
                Note(new FileInfo(Path.Combine(entry, "exe")).LinkTarget, pid);
                foreach (var line in File.ReadLines(Path.Combine(entry, "maps")))
                    if (line.IndexOf('/') is int slash and >= 0) Note(line[slash..].Replace(" (deleted)", ""), pid);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { } // gone, or another account's
        }
        return used;
    }
}
