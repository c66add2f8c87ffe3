namespace SockShim.Stack.Claims;

/// <summary>Where lease tables live: one file per pool and network namespace.</summary>
internal static class StateDirectory
{
    /// <summary>A table is per pool definition and per network namespace: addresses are unique
    /// within a namespace, and two namespaces may use the same pool independently.</summary>
    public static string TablePath(string directory, string pool, string fingerprint)
    {
        string safeName = string.Concat(pool.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' ? c : '_'));
        return Path.Combine(directory, $"{safeName}.{fingerprint}{TableSuffix}");
    }

    /// <summary>Writes, beside a table, the description (text) of the pool it was made for, so
    /// status and gc can read every table of the host without being given the configuration.</summary>
    public static void WriteDescription(string tablePath, string json)
    {
        string path = tablePath + ".pool.json";
        // An older SockShim's description (0666: any account could have rewritten it) is
        // replaced, whatever it says: the directory is this account's alone, and rename(2) never
        // follows what it replaces. Anything else wrong with it is refused, as every opener does.
        if (!HostFiles.OwnButWritableByOthers(path))
        {
            using var existing = HostFiles.OpenExisting(path, size: null);
            if (existing is not null && new StreamReader(existing).ReadToEnd() == json) return;
        }
        HostFiles.Publish(path, fs => fs.Write(System.Text.Encoding.UTF8.GetBytes(json)), replace: true);
    }

    /// <summary>How the name of each table of this network namespace ends.</summary>
    public static string TableSuffix => $".{NetworkNamespaceId()}.{LeaseTable.FileVersion}.leases";

    private static string NetworkNamespaceId()
    {
        // "/proc/self/ns/net" links to "net:[4026531840]"; the inode names the namespace.
        var target = new FileInfo("/proc/self/ns/net").LinkTarget;
        return target is null ? "net0" : "net" + new string(target.Where(char.IsDigit).ToArray());
    }
}
