using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace SockShim.Stack.Interop;

/// <summary>What makes a path untrustworthy: the first component, from /, that is wrong, and why.</summary>
internal sealed record Untrusted(string Path, string Reason)
{
    public override string ToString() => $"{Path} is {Reason}";
}

/// <summary>A file read by <see cref="HostPaths.ReadTrusted"/>: its canonical path and its bytes.</summary>
internal sealed record TrustedFile(string Path, byte[] Bytes);

/// <summary>
/// Whether a path SockShim acts on can be trusted (trust-model.md, "own what you trust"): it and
/// every directory above it are owned by root or by this account and no other account can write
/// them. A directory others may write is allowed only above the path, and only when it is root's
/// and sticky (/tmp, /dev/shm): there no other account can rename or remove an entry it does not
/// own, so a root- or self-owned entry below it stays where it is. The one judge of this for the
/// woven store, the tool's own files, the configuration file and the state directory.
/// </summary>
internal static unsafe class HostPaths
{
    /// <summary>The path with every link resolved by the kernel, or null when it does not exist.
    /// Later uses go through this name, so a link another account owns cannot be re-pointed
    /// after the check.</summary>
    public static string? Canonical(string path)
    {
        int fd;
        fixed (byte* p = Bytes(path)) fd = open(p, O_PATH | O_CLOEXEC);
        if (fd < 0) return null;
        using var handle = new SafeFileHandle(fd, ownsHandle: true);
        return new FileInfo($"/proc/self/fd/{fd}").LinkTarget;
    }

    /// <summary>What makes <paramref name="canonical"/> (a path without links) untrustworthy, as
    /// "COMPONENT is REASON", or null when it and every directory above it are fine. With
    /// <paramref name="toMakeIn"/> it is a directory something will be made in, and may be sticky.</summary>
    public static Untrusted? Problem(string canonical, bool leafIsFile = false, bool toMakeIn = false)
    {
        var components = new List<string> { canonical };
        for (string? up = Path.GetDirectoryName(canonical); up is not null; up = Path.GetDirectoryName(up)) components.Add(up);
        for (int i = components.Count - 1; i >= 0; i--)
        {
            bool leaf = i == 0 && !toMakeIn;
            // Above the leaf a root-owned sticky directory (/tmp) is fine: no one else can
            // rename what root owns in it.
            if (Judge(components[i], fileAllowed: leaf && leafIsFile, stickyAllowed: !leaf, out _) is { } problem) return problem;
        }
        return null;
    }

    /// <summary>One path, not followed: a directory (or, when allowed, a regular file) of root or
    /// this account that no other account can write.</summary>
    public static Untrusted? Judge(string path, bool fileAllowed, bool stickyAllowed, out bool isDirectory)
    {
        isDirectory = false;
        stat st;
        int result;
        fixed (byte* p = Bytes(path)) result = lstat(p, &st);
        if (result != 0) return new(path, $"unreadable ({Strerror(errno)})");
        uint mode = (uint)st.st_mode, uid = (uint)st.st_uid, type = mode & (uint)S_IFMT;
        string octal = Convert.ToString(mode & 0xFFF, 8);
        if (type == (uint)S_IFLNK) return new(path, $"a symbolic link (owner uid {uid})");
        isDirectory = type == (uint)S_IFDIR;
        if (!isDirectory && !(fileAllowed && type == (uint)S_IFREG)) return new(path, fileAllowed ? "not a regular file or directory" : "not a directory");
        if (uid != 0 && uid != geteuid()) return new(path, $"owned by uid {uid} ({UserName(uid)}), mode {octal}");
        bool othersWrite = (mode & 0b000_010_010) != 0, sticky = (mode & 0b1_000_000_000) != 0;
        if (othersWrite && !(stickyAllowed && sticky && uid == 0))
            return new(path, $"writable by {((mode & 0b000_000_010) != 0 ? "other accounts" : "its group's other accounts")} (mode {octal}, owner uid {uid})");
        return null;
    }

    /// <summary>A file this account will act on (the configuration file), as read: found through
    /// its canonical path, which with every directory above it must pass <see cref="Problem"/>,
    /// then opened without following a link and checked again on the handle (the very file the
    /// path led to when it was resolved, still regular, still root's or this account's and
    /// writable by no other). Null with <paramref name="problem"/> saying why not; IOException
    /// when it cannot be read (this account may not, or it is over <paramref name="max"/> bytes).</summary>
    public static TrustedFile? ReadTrusted(string path, long max, out Untrusted? problem)
    {
        problem = null;
        int given;
        fixed (byte* p = Bytes(path)) given = open(p, O_PATH | O_CLOEXEC);
        if (given < 0) { problem = new(path, "missing"); return null; }
        stat resolved;
        string? canonical;
        using (var handle = new SafeFileHandle(given, ownsHandle: true))
        {
            if (fstat(given, &resolved) != 0) throw new IOException($"{path}: {Strerror(errno)}");
            canonical = new FileInfo($"/proc/self/fd/{given}").LinkTarget;
        }
        // A pipe or socket has no path ("pipe:[N]"); a path into another mount namespace
        // (/proc/PID/root/...) resolves to a name that here means another file.
        if (canonical is null || !canonical.StartsWith('/')) { problem = new(path, "not a file in a directory (a pipe, a socket or a deleted file)"); return null; }
        if ((problem = Problem(canonical, leafIsFile: true)) is not null) return null;
        int fd;
        fixed (byte* p = Bytes(canonical)) fd = open(p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) throw new IOException($"{canonical}: {Strerror(errno)}");
        using var file = new SafeFileHandle(fd, ownsHandle: true);
        stat st;
        if (fstat(fd, &st) != 0) throw new IOException($"{canonical}: {Strerror(errno)}");
        uint uid = (uint)st.st_uid, mode = (uint)st.st_mode;
        if ((ulong)st.st_dev != (ulong)resolved.st_dev || (ulong)st.st_ino != (ulong)resolved.st_ino)
            problem = new(path, $"not the file its resolved path {canonical} names here (a path into another mount namespace, such as /proc/PID/root, or one changed while it was read)");
        else if ((mode & (uint)S_IFMT) != (uint)S_IFREG) problem = new(canonical, "not a regular file");
        else if ((uid != 0 && uid != geteuid()) || (mode & 0b000_010_010) != 0)
            problem = new(canonical, $"changed while it was checked (now mode {Convert.ToString(mode & 0xFFF, 8)}, owner uid {uid})");
        if (problem is not null) return null;
        return new TrustedFile(canonical, ReadBounded(file, canonical, (long)st.st_size, max));
    }

    /// <summary>The bytes of an open regular file of <paramref name="size"/> bytes (its fstat),
    /// IOException naming <paramref name="path"/> when that is over <paramref name="max"/>; a file
    /// that shrank while read gives what was there.</summary>
    public static byte[] ReadBounded(SafeFileHandle file, string path, long size, long max)
    {
        if (size > max) throw new IOException($"{path} is {size} bytes, more than SockShim reads of such a file ({max})");
        var bytes = new byte[size];
        int read = 0;
        while (read < bytes.Length && RandomAccess.Read(file, bytes.AsSpan(read), read) is var n && n > 0) read += n;
        return read == bytes.Length ? bytes : bytes[..read];
    }

    public static string UserName(uint uid) => AccountField(uid, 0) ?? "unknown";

    /// <summary>A field of <paramref name="uid"/>'s line in /etc/passwd (0 its name, 5 its home),
    /// or null: the account database's word, never the environment's.</summary>
    public static string? AccountField(uint uid, int field)
    {
        try { return File.ReadLines("/etc/passwd").Select(l => l.Split(':')).FirstOrDefault(f => f.Length > Math.Max(field, 2) && f[2] == uid.ToString())?[field] is { Length: > 0 } value ? value : null; }
        catch (IOException) { return null; }
    }

    /// <summary>A path as the system calls take it: UTF-8, NUL-terminated.</summary>
    public static byte[] Bytes(string path) => Encoding.UTF8.GetBytes(path + "\0");

    /// <summary>An errno in words, with its number.</summary>
    public static string Strerror(int error) => Marshal.GetPInvokeErrorMessage(error) + $" (errno {error})";
}
