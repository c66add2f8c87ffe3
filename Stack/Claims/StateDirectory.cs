namespace SockShim.Stack.Claims;

/// <summary>Where lease tables live: one file per pool and network namespace.</summary>
internal static class StateDirectory
{
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
        using (var existing = HostFiles.OpenExisting(path, size: null))
            if (existing is not null && new StreamReader(existing).ReadToEnd() == json) return;
        HostFiles.Publish(path, fs => fs.Write(System.Text.Encoding.UTF8.GetBytes(json)), replace: true);
    }

    /// <summary>The tables of this network namespace in <paramref name="directory"/>, with the
    /// description written beside each (null when it cannot be read).</summary>
    public static IEnumerable<(string TablePath, string? Description)> Tables(string directory)
    {
        // Nothing there: no tables yet. Anything else there (a file, a link) is refused by the
        // check, with a message naming it, rather than read as "no tables".
        if (!Exists(directory)) yield break;
        HostFiles.CheckDirectory(directory);
        string suffix = $".{NetworkNamespaceId()}.{LeaseTable.FileVersion}.leases";
        foreach (var table in Directory.GetFiles(directory, "*" + suffix))
        {
            string? description = null;
            try
            {
                using var file = HostFiles.OpenExisting(table + ".pool.json", size: null);
                if (file is not null) description = new StreamReader(file).ReadToEnd();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
            yield return (table, description);
        }
    }

    /// <summary>Whether anything, even a dangling link, is at <paramref name="path"/>.</summary>
    public static bool Exists(string path) => Path.Exists(path) || new FileInfo(path).LinkTarget is not null;

    private static string NetworkNamespaceId()
    {
        // "/proc/self/ns/net" links to "net:[4026531840]"; the inode names the namespace.
        var target = new FileInfo("/proc/self/ns/net").LinkTarget;
        return target is null ? "net0" : "net" + new string(target.Where(char.IsDigit).ToArray());
    }
}
