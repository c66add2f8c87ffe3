using System.Security.Cryptography;
using System.Text;
using Microsoft.Win32.SafeHandles;
using SockShim.Stack.Interop;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace SockShim.Interceptor.Store;

/// <summary>
/// The directories and files SockShim loads into apps, or builds in: whether they can be trusted
/// (HostPaths judges: it and every directory above it root's or this account's, writable by no
/// other account), and how they are made: with O_EXCL and O_NOFOLLOW under random names, their
/// mode set on the handle.
/// </summary>

internal static unsafe class TrustedPaths
{
    public static bool AsRoot => geteuid() == 0;

    /// <summary>The first entry under <paramref name="directory"/> (itself already checked with
    /// <see cref="HostPaths.Problem"/>) that is not a regular file or directory of root or this account
    /// that no other account can write; one lstat each, links never followed.</summary>
    public static Untrusted? EntriesProblem(string directory)
    {
        foreach (var entry in Directory.EnumerateFileSystemEntries(directory))
        {
            if (HostPaths.Judge(entry, fileAllowed: true, stickyAllowed: false, out bool isDirectory) is { } problem) return problem;
            if (isDirectory && EntriesProblem(entry) is { } inner) return inner;
        }
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
        while ((canonical = HostPaths.Canonical(existing)) is null)
        {
            missing.Push(Path.GetFileName(existing));
            existing = Path.GetDirectoryName(existing) ?? throw new IOException($"{full} cannot be made: no directory above it exists");
        }
        problem = check ? HostPaths.Problem(canonical, toMakeIn: missing.Count > 0) : null;
        if (problem is not null) return canonical;
        while (missing.TryPop(out var name))
        {
            canonical = Path.Combine(canonical, name);
            int made;
            fixed (byte* p = HostPaths.Bytes(canonical)) made = mkdir(p, (mode_t)mode);
            if (made != 0 && errno != EEXIST) throw new IOException($"{canonical} cannot be made: {HostPaths.Strerror(errno)}");
            if (check && HostPaths.Problem(canonical) is { } p2) { problem = p2; return canonical; }
        }
        return HostPaths.Canonical(canonical) ?? throw new IOException($"{canonical} disappeared while it was made");
    }

    /// <summary>Makes, or checks, a directory only this account may enter or write: a
    /// directory (not a link), this account's, writable by no other account.</summary>
    public static string PrivateDirectory(string path)
    {
        int made;
        fixed (byte* p = HostPaths.Bytes(path)) made = mkdir(p, 0b111_000_000);
        if (made != 0 && errno != EEXIST) throw new IOException($"{path} cannot be made: {HostPaths.Strerror(errno)}");
        stat st;
        int result;
        fixed (byte* p = HostPaths.Bytes(path)) result = lstat(p, &st);
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
        fixed (byte* p = HostPaths.Bytes(path)) made = mkdir(p, 0b111_000_000);
        if (made != 0) throw new IOException($"{path} cannot be made: {HostPaths.Strerror(errno)}");
        return PrivateDirectory(path);
    }

    /// <summary>Writes a file that must not exist yet: never through a link, mode set on the handle.</summary>
    public static void WriteNew(string path, ReadOnlySpan<byte> bytes, uint mode)
    {
        int fd;
        fixed (byte* p = HostPaths.Bytes(path)) fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)mode);
        if (fd < 0) throw new IOException($"{path} cannot be made: {HostPaths.Strerror(errno)}");
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
    /// assembly): a regular file of at most <paramref name="max"/> bytes, else IOException naming
    /// it. Links are followed (the app's files are read as the host would read them), but what a
    /// name leads to is looked at (O_PATH, which opens nothing) before it is opened for reading,
    /// through that very descriptor: a FIFO is never waited on, and a device another account's
    /// link leads to (a watchdog, a serial line, a tape) is never opened by root, where the open
    /// alone acts (the fourth review).</summary>
    public static byte[] ReadBounded(string path, long max)
    {
        int found;
        fixed (byte* p = HostPaths.Bytes(path)) found = open(p, O_PATH | O_CLOEXEC);
        if (found < 0) throw new IOException($"{path} cannot be opened: {HostPaths.Strerror(errno)}");
        stat st;
        try
        {
            if (fstat(found, &st) != 0) throw new IOException($"{path} cannot be read: {HostPaths.Strerror(errno)}");
            if (((uint)st.st_mode & (uint)S_IFMT) != (uint)S_IFREG) throw new IOException($"{path} is not a regular file");
            int fd;
            fixed (byte* p = HostPaths.Bytes($"/proc/self/fd/{found}")) fd = open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
            if (fd < 0) throw new IOException($"{path} cannot be opened: {HostPaths.Strerror(errno)}");
            using var handle = new SafeFileHandle(fd, ownsHandle: true);
            return HostPaths.ReadBounded(handle, path, (long)st.st_size, max);
        }
        finally { close(found); }
    }

    private static SafeFileHandle OpenChecked(string path, out stat st)
    {
        int fd;
        fixed (byte* p = HostPaths.Bytes(path)) fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) throw new IOException($"{path} cannot be opened: {HostPaths.Strerror(errno)}");
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        stat s;
        if (fstat(fd, &s) != 0) { handle.Dispose(); throw new IOException($"{path} cannot be read: {HostPaths.Strerror(errno)}"); }
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
}
