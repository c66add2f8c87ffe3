namespace SockShim.Stack.Claims;

/// <summary>Where lease tables live: one file per pool and network namespace.</summary>
internal static class StateDirectory
{
    public static void Ensure(string path)
    {
        if (Directory.Exists(path)) return;
        Directory.CreateDirectory(path);
        // World-writable with the sticky bit, like /tmp: every account on the host must share
        // one table per pool for uniqueness to hold, and none may delete another's files.
        try { File.SetUnixFileMode(path, (UnixFileMode)0b1_111_111_111); }
        catch (UnauthorizedAccessException) { /* made by another account a moment ago */ }
    }

    /// <summary>A table is per pool definition and per network namespace: addresses are unique
    /// within a namespace, and two namespaces may use the same pool independently.</summary>
    public static string TablePath(string directory, string pool, string fingerprint)
    {
        string safeName = string.Concat(pool.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' ? c : '_'));
        return Path.Combine(directory, $"{safeName}.{fingerprint}.{NetworkNamespaceId()}.{LeaseTable.FileVersion}.leases");
    }

    /// <summary>Writes, beside a table, the description (text) of the pool it was made for, so
    /// status and gc can read every table of the host without being given the configuration.</summary>
    public static void WriteDescription(string tablePath, string json)
    {
        string path = tablePath + ".pool.json";
        if (File.Exists(path) && File.ReadAllText(path) == json) return;
        string temp = $"{path}.{Environment.ProcessId}.tmp";
        try
        {
            File.WriteAllText(temp, json);
            try { File.SetUnixFileMode(temp, (UnixFileMode)0b110_110_110); } catch (UnauthorizedAccessException) { }
            File.Move(temp, path, overwrite: true);
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
        {
            // Written by another account (the sticky directory keeps it theirs): theirs describes
            // the same pool, since the table's name carries the pool's fingerprint.
            try { File.Delete(temp); } catch (Exception e) when (e is UnauthorizedAccessException or IOException) { }
        }
    }

    /// <summary>The tables of this network namespace in <paramref name="directory"/>, with the
    /// description written beside each (null when it cannot be read).</summary>
    public static IEnumerable<(string TablePath, string? Description)> Tables(string directory)
    {
        if (!Directory.Exists(directory)) yield break;
        string suffix = $".{NetworkNamespaceId()}.{LeaseTable.FileVersion}.leases";
        foreach (var table in Directory.GetFiles(directory, "*" + suffix))
        {
            string? description = null;
            try { description = File.ReadAllText(table + ".pool.json"); }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
            yield return (table, description);
        }
    }

    private static string NetworkNamespaceId()
    {
        // "/proc/self/ns/net" links to "net:[4026531840]"; the inode names the namespace.
        var target = new FileInfo("/proc/self/ns/net").LinkTarget;
        return target is null ? "net0" : "net" + new string(target.Where(char.IsDigit).ToArray());
    }
}
