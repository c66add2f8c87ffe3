using SockShim.Stack.Pools;

namespace SockShim.Stack.Leases;

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
    public static string TablePath(string directory, PoolDefinition pool)
    {
        string safeName = string.Concat(pool.Name.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' ? c : '_'));
        return System.IO.Path.Combine(directory, $"{safeName}.{pool.Fingerprint}.{NetworkNamespaceId()}.leases");
    }

    private static string NetworkNamespaceId()
    {
        // "/proc/self/ns/net" links to "net:[4026531840]"; the inode names the namespace.
        var target = new FileInfo("/proc/self/ns/net").LinkTarget;
        return target is null ? "net0" : "net" + new string(target.Where(char.IsDigit).ToArray());
    }
}
