namespace SockShim.Launcher;

/// <summary>
/// The clone a ./sockshim script runs the launcher from: whether any source of the tool changed
/// after it was built. Asked here, in the launcher's own process with one stat a file, rather
/// than by a `find` the script would start on every call (process creation alone cost
/// milliseconds of every wrapped app's start-up).
/// </summary>
internal static class CloneSources
{
    // What the script builds the tool from; build outputs are skipped.
    private static readonly string[] Roots = ["Interceptor", "Stack", "Shim"];

    /// <summary>True when a .cs or .csproj file under the tool's source folders is newer than
    /// <paramref name="stamp"/> (written after the last build); a missing stamp is stale.</summary>
    public static bool ChangedSince(string clone, string stamp)
    {
        if (!File.Exists(stamp)) return true;
        var built = File.GetLastWriteTimeUtc(stamp);
        return Roots.Any(r => Newer(Path.Combine(clone, r), built));
    }

    private static bool Newer(string directory, DateTime built)
    {
        if (!Directory.Exists(directory)) return false;
        foreach (var entry in new DirectoryInfo(directory).EnumerateFileSystemInfos())
        {
            // From the directory entry itself: asking each file for a link target costs a
            // readlink apiece.
            if ((entry.Attributes & FileAttributes.ReparsePoint) != 0) continue;
            if (entry is DirectoryInfo d)
            {
                if (d.Name is "bin" or "obj") continue;
                if (Newer(d.FullName, built)) return true;
            }
            else if ((entry.Extension is ".cs" or ".csproj") && entry.LastWriteTimeUtc > built) return true;
        }
        return false;
    }
}
