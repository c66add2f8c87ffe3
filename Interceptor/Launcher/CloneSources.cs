using System.IO.Enumeration;

namespace SockShim.Launcher;

/// <summary>
/// The clone a ./sockshim script runs the launcher from: whether any source of the tool changed
/// after it was built. Asked here, in the launcher's own process with one stat a source file,
/// rather than by a `find` the script would start on every call (process creation alone cost
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
        foreach (var root in Roots)
            if (Directory.Exists(Path.Combine(clone, root)) && Newer(Path.Combine(clone, root), built)) return true;
        return false;
    }

    // Straight from the directory entries (their type comes with the name): no object per entry,
    // and a stat only for a source file. FileSystemInfo objects cost 1.2 ms a run over the
    // clone's ~180 entries, every wrapped app's start-up paying it.
    private static bool Newer(string directory, DateTime built)
    {
        var newer = new FileSystemEnumerable<bool>(directory, (ref FileSystemEntry _) => true,
            new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = true })
        {
            ShouldRecursePredicate = (ref FileSystemEntry e) => !(e.FileName is "bin" or "obj"),
            ShouldIncludePredicate = (ref FileSystemEntry e) => !e.IsDirectory
                && (e.FileName.EndsWith(".cs", StringComparison.Ordinal) || e.FileName.EndsWith(".csproj", StringComparison.Ordinal))
                && e.LastWriteTimeUtc > built,
        };
        using var found = newer.GetEnumerator();
        return found.MoveNext();
    }
}
