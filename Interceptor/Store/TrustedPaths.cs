using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace SockShim.Interceptor.Store;

/// <summary>
/// The checks that decide whether a directory or file SockShim loads into apps, or builds in, can
/// be trusted: it and every directory above it are owned by root or by this account and no other
/// account can write them. A directory others may write is allowed only above the path, and only
/// when it is root's and sticky (/tmp, /dev/shm): there no other account can rename or remove an
/// entry it does not own, so a root- or self-owned entry below it stays where it is.
/// Files are made with O_EXCL and O_NOFOLLOW under random names, their mode set on the handle.
/// </summary>
/// <summary>What makes a path untrustworthy: the first component, from /, that is wrong, and why.</summary>
internal sealed record Untrusted(string Path, string Reason)
{
    public override string ToString() => $"{Path} is {Reason}";
}

internal static unsafe class TrustedPaths
{
    public static bool AsRoot => geteuid() == 0;

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

    /// <summary>The first entry under <paramref name="directory"/> (itself already checked with
    /// <see cref="Problem"/>) that is not a regular file or directory of root or this account
    /// that no other account can write; one lstat each, links never followed.</summary>
    public static Untrusted? EntriesProblem(string directory)
    {
        foreach (var entry in Directory.EnumerateFileSystemEntries(directory))
        {
            if (Judge(entry, fileAllowed: true, stickyAllowed: false, out bool isDirectory) is { } problem) return problem;
            if (isDirectory && EntriesProblem(entry) is { } inner) return inner;
        }
        return null;
    }

    // One path, not followed: a directory (or, when allowed, a regular file) of root or this
    // account that no other account can write.
    private static Untrusted? Judge(string path, bool fileAllowed, bool stickyAllowed, out bool isDirectory)
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
        if (othersWrite && !(stickyAllowed && sticky && uid == 0)) return new(path, $"writable by other accounts (mode {octal}, owner uid {uid})");
        return null;
    }

    /// <summary>Makes <paramref name="path"/> and the directories missing above it (mode
    /// <paramref name="mode"/>), and returns its canonical name. With <paramref name="check"/>,
    /// what exists already is checked before anything is made in it, and what is made after:
    /// <paramref name="problem"/> then says what is wrong and nothing more is made.</summary>
    public static string EnsureDirectory(string path, uint mode, bool check, out Untrusted? problem)
    {
        string full = Path.GetFullPath(path);
        var missing = new Stack<string>();
        string existing = full;
        string? canonical;
        while ((canonical = Canonical(existing)) is null)
        {
            missing.Push(Path.GetFileName(existing));
            existing = Path.GetDirectoryName(existing) ?? throw new IOException($"{full} cannot be made: no directory above it exists");
        }
        problem = check ? Problem(canonical, toMakeIn: missing.Count > 0) : null;
        if (problem is not null) return canonical;
        while (missing.TryPop(out var name))
        {
            canonical = Path.Combine(canonical, name);
            int made;
            fixed (byte* p = Bytes(canonical)) made = mkdir(p, (mode_t)mode);
            if (made != 0 && errno != EEXIST) throw new IOException($"{canonical} cannot be made: {Strerror(errno)}");
            if (check && Problem(canonical) is { } p2) { problem = p2; return canonical; }
        }
        return Canonical(canonical) ?? throw new IOException($"{canonical} disappeared while it was made");
    }

    /// <summary>Makes, or checks, a directory only this account may enter or write: a
    /// directory (not a link), this account's, writable by no other account.</summary>
    public static string PrivateDirectory(string path)
    {
        int made;
        fixed (byte* p = Bytes(path)) made = mkdir(p, 0b111_000_000);
        if (made != 0 && errno != EEXIST) throw new IOException($"{path} cannot be made: {Strerror(errno)}");
        stat st;
        int result;
        fixed (byte* p = Bytes(path)) result = lstat(p, &st);
        if (result != 0 || ((uint)st.st_mode & (uint)S_IFMT) != (uint)S_IFDIR || (uint)st.st_uid != geteuid() || ((uint)st.st_mode & 0b000_010_010) != 0)
            throw new Stack.Claims.UntrustedStateException(
                $"{path} is not a private directory of this account (mode {Convert.ToString((uint)st.st_mode & 0xFFF, 8)}, owner uid {(uint)st.st_uid}); remove it, SockShim makes it anew");
        return path;
    }

    /// <summary>A new directory with a random name under <paramref name="parent"/>, mode 0700.</summary>
    public static string NewPrivateDirectory(string parent, string prefix)
    {
        string path = Path.Combine(parent, prefix + Convert.ToHexString(RandomNumberGenerator.GetBytes(8)).ToLowerInvariant());
        int made;
        fixed (byte* p = Bytes(path)) made = mkdir(p, 0b111_000_000);
        if (made != 0) throw new IOException($"{path} cannot be made: {Strerror(errno)}");
        return PrivateDirectory(path);
    }

    /// <summary>Writes a file that must not exist yet: never through a link, mode set on the handle.</summary>
    public static void WriteNew(string path, ReadOnlySpan<byte> bytes, uint mode)
    {
        int fd;
        fixed (byte* p = Bytes(path)) fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)mode);
        if (fd < 0) throw new IOException($"{path} cannot be made: {Strerror(errno)}");
        using var stream = new FileStream(new SafeFileHandle(fd, ownsHandle: true), FileAccess.Write);
        fchmod(fd, (mode_t)mode); // whatever the umask
        stream.Write(bytes);
    }

    public static void WriteNew(string path, string text, uint mode) => WriteNew(path, Encoding.UTF8.GetBytes(text), mode);

    /// <summary>Writes under a random name beside <paramref name="path"/>, then renames it over
    /// whatever is there (a link there is replaced, never followed).</summary>
    public static void Replace(string path, string text, uint mode)
    {
        string temp = $"{path}.{Convert.ToHexString(RandomNumberGenerator.GetBytes(8))}.tmp";
        try
        {
            WriteNew(temp, text, mode);
            File.Move(temp, path, overwrite: true);
        }
        finally { File.Delete(temp); }
    }

    /// <summary>The SHA-256 of a regular file (opened without following a link) and its identity
    /// as the kernel keeps it (inode, size, change time): a later write changes the change time,
    /// which only root can set, so the startup hook can tell with one stat that the file is still
    /// the one hashed. As root, a file another account owns or can write is refused.</summary>
    public static (string Sha256, string Identity) Hash(string path)
    {
        using var handle = OpenChecked(path, out stat before);
        using var stream = new FileStream(handle, FileAccess.Read);
        string sha = Convert.ToHexString(SHA256.HashData(stream)).ToLowerInvariant();
        stat after;
        if (fstat((int)handle.DangerousGetHandle(), &after) != 0 || Identity(after) != Identity(before)) throw new IOException($"{path} changed while it was read");
        return (sha, Identity(after));
    }

    /// <summary>The identity <see cref="Hash"/> reports, with the same checks, without reading
    /// the file: when it equals the identity recorded with a hash, the bytes are still the ones
    /// hashed (rewriting them would have changed the change time).</summary>
    public static string IdentityOf(string path)
    {
        using var handle = OpenChecked(path, out stat st);
        return Identity(st);
    }

    /// <summary>The bytes of a file another account may own (an app's runtimeconfig, deps.json or
    /// assembly): a regular file (a FIFO is not waited on, a device not read) of at most
    /// <paramref name="max"/> bytes, else IOException naming it. Links are followed: the app's
    /// files are read as the host would read them.</summary>
    public static byte[] ReadBounded(string path, long max)
    {
        int fd;
        fixed (byte* p = Bytes(path)) fd = open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) throw new IOException($"{path} cannot be opened: {Strerror(errno)}");
        using var handle = new SafeFileHandle(fd, ownsHandle: true);
        stat st;
        if (fstat(fd, &st) != 0) throw new IOException($"{path} cannot be read: {Strerror(errno)}");
        if (((uint)st.st_mode & (uint)S_IFMT) != (uint)S_IFREG) throw new IOException($"{path} is not a regular file");
        if ((long)st.st_size > max) throw new IOException($"{path} is {(long)st.st_size} bytes, more than SockShim reads of such a file ({max})");
        var bytes = new byte[(long)st.st_size];
        int read = 0;
        while (read < bytes.Length && RandomAccess.Read(handle, bytes.AsSpan(read), read) is var n && n > 0) read += n;
        return read == bytes.Length ? bytes : bytes[..read]; // shrunk while read: what was there
    }

    private static SafeFileHandle OpenChecked(string path, out stat st)
    {
        int fd;
        fixed (byte* p = Bytes(path)) fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) throw new IOException($"{path} cannot be opened: {Strerror(errno)}");
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        stat s;
        if (fstat(fd, &s) != 0) { handle.Dispose(); throw new IOException($"{path} cannot be read: {Strerror(errno)}"); }
        if (((uint)s.st_mode & (uint)S_IFMT) != (uint)S_IFREG) { handle.Dispose(); throw new IOException($"{path} is not a regular file"); }
        if (AsRoot && ((uint)s.st_uid != 0 || ((uint)s.st_mode & 0b000_010_010) != 0))
        {
            handle.Dispose();
            throw new Stack.Claims.UntrustedStateException($"{path} is owned by uid {(uint)s.st_uid} with mode {Convert.ToString((uint)s.st_mode & 0xFFF, 8)}; as root SockShim loads only files root owns and no other account can write");
        }
        st = s;
        return handle;
    }

    private static string Identity(stat st) => $"{(ulong)st.st_ino}:{(long)st.st_size}:{(long)st.st_ctim.tv_sec}.{(long)st.st_ctim.tv_nsec:D9}";

    private static byte[] Bytes(string path) => Encoding.UTF8.GetBytes(path + "\0");

    private static string Strerror(int error) => Marshal.GetPInvokeErrorMessage(error) + $" (errno {error})";

    private static string UserName(uint uid) => AccountField(uid, 0) ?? "unknown";

    /// <summary>A field of <paramref name="uid"/>'s line in /etc/passwd (0 its name, 5 its home),
    /// or null: the account database's word, never the environment's.</summary>
    public static string? AccountField(uint uid, int field)
    {
        try { return File.ReadLines("/etc/passwd").Select(l => l.Split(':')).FirstOrDefault(f => f.Length > Math.Max(field, 2) && f[2] == uid.ToString())?[field] is { Length: > 0 } value ? value : null; }
        catch (IOException) { return null; }
    }
}
