using Microsoft.Win32.SafeHandles;
using SockShim.Stack.Interop;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace SockShim.Stack.Claims;

/// <summary>Host state SockShim will not use, and why (a path, its owner and mode, what to do).</summary>
public sealed class UntrustedStateException(string message) : IOException(message);

/// <summary>
/// Files in the state directory, opened the only way that is safe when other accounts share the
/// host: the directory must be this account's and writable by no one else, so nobody can plant
/// a file, a link or a name in it; every file is still opened without following links and
/// checked on its handle (a regular file of this account, one link); new files are made under a
/// random temporary name with O_EXCL and their mode set on the handle, then put in place. No
/// advisory lock is taken (another account could hold one to stop every opener).
/// </summary>
internal static unsafe class HostFiles
{
    /// <summary>Makes <paramref name="path"/> (mode 0755, this account's) or checks the one there;
    /// its canonical path (see <see cref="CheckDirectory"/>).</summary>
    public static string EnsureDirectory(string path)
    {
        string trusted = TrustedParent(path);
        int made;
        fixed (byte* p = HostPaths.Bytes(trusted)) made = mkdir(p, 0b111_101_101);
        if (made != 0 && errno != EEXIST) throw new UntrustedStateException($"state directory {path} cannot be made: {HostPaths.Strerror(errno)}");
        return CheckDirectory(path);
    }

    /// <summary>Refuses a state directory that is a link, not a directory, another account's, or
    /// writable by group or others, or one in a directory another account could rename it out of
    /// (and put its own in its place): every directory above it must be root's or this account's
    /// and writable by no other account, but for a root-owned sticky one such as /tmp or /dev/shm.
    /// Its canonical path (the directories above it with their links resolved): the tables are
    /// opened through it, so a link above it that is re-pointed later changes nothing.</summary>
    public static string CheckDirectory(string path)
    {
        path = TrustedParent(path);
        stat st;
        int result;
        fixed (byte* p = HostPaths.Bytes(path)) result = lstat(p, &st);
        if (result != 0) throw new UntrustedStateException($"state directory {path} cannot be read: {HostPaths.Strerror(errno)}");
        uint mode = (uint)st.st_mode, uid = (uint)st.st_uid, me = (uint)geteuid();
        string what = (mode & (uint)S_IFMT) == (uint)S_IFLNK ? "a symbolic link" : (mode & (uint)S_IFMT) != (uint)S_IFDIR ? "not a directory" : "";
        if (what.Length == 0 && uid == me && (mode & 0b000_010_010) == 0) return path;
        string octal = Convert.ToString(mode & 0xFFF, 8);
        // /tmp or /dev/shm itself: a directory every account shares, never SockShim's to change.
        if (what.Length == 0 && (mode & 0b1_000_000_000) != 0 && (uid == 0 || uid == me))
            throw new UntrustedStateException(
                $"state directory {path} is a directory every account shares (mode {octal}): SockShim keeps its tables in a directory of its own that no other account can write. " +
                $"Choose one inside it, such as {Path.Combine(path, $"sockshim-{me}")}, with --state-dir or SOCKSHIM_STATEDIR, or leave both unset for the default");
        if (what.Length == 0 && uid == me)
            throw new UntrustedStateException(
                $"state directory {path} is this account's but writable by other accounts (mode {octal}; an older SockShim made it so): SockShim keeps its tables only in a directory no other account can write. " +
                $"Check that nothing in it belongs to another account, then `chmod 755 {path}`, or remove it (`rm -r {path}`) when no process uses SockShim");
        if (what.Length == 0) what = $"owned by uid {uid} ({HostPaths.UserName(uid)})";
        throw new UntrustedStateException(
            $"state directory {path} is {what} (mode {octal}, owner uid {uid}); SockShim (uid {me}) keeps its tables only in a directory it owns " +
            $"that no other account can write. It is not SockShim's: " + (me == 0 ? $"remove it (`rm -r {path}`, after checking what is in it)" : "ask its owner or root to remove it") +
            ", or choose another with --state-dir or SOCKSHIM_STATEDIR");
    }

    /// <summary>The check of a state directory before anything uses it (`sockshim run`, before the
    /// app starts): the directories above it as <see cref="CheckDirectory"/> judges them, and the
    /// directory itself when it exists already (the first process makes it otherwise). Its
    /// canonical path, for the app to use.</summary>
    public static string CheckBeforeUse(string path)
    {
        string trusted = TrustedParent(path);
        stat st;
        int result;
        fixed (byte* p = HostPaths.Bytes(trusted)) result = lstat(p, &st);
        return result != 0 && errno == ENOENT ? trusted : CheckDirectory(trusted);
    }

    /// <summary>Opens an existing file of the state directory for reading and writing: not
    /// through a link, a regular file of this account with one name, of exactly
    /// <paramref name="size"/> bytes when given. Null when it does not exist, or no longer does
    /// by the time it is checked.</summary>
    public static FileStream? OpenExisting(string path, long? size)
    {
        int fd;
        fixed (byte* p = HostPaths.Bytes(path)) fd = open(p, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
        {
            if (errno == ENOENT) return null;
            throw new UntrustedStateException($"{path} cannot be opened: {HostPaths.Strerror(errno)} (a link, or another account's file, is never opened)");
        }
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            stat st;
            if (fstat(fd, &st) != 0) throw new UntrustedStateException($"{path} cannot be read: {HostPaths.Strerror(errno)}");
            // No link left: the name went away between the open and now (another process of this
            // account renamed a new description over it, or the name was removed by hand): as if
            // it had not been there.
            if ((ulong)st.st_nlink == 0 && ((uint)st.st_mode & (uint)S_IFMT) == (uint)S_IFREG && (uint)st.st_uid == (uint)geteuid())
            {
                handle.Dispose();
                return null;
            }
            // Two links for the moment a new table is put in place (its temporary name still
            // there); no other account can add a name in this directory.
            if (((uint)st.st_mode & (uint)S_IFMT) != (uint)S_IFREG || (uint)st.st_uid != (uint)geteuid() || (ulong)st.st_nlink is < 1 or > 2)
                throw new UntrustedStateException($"{path} is not a file of this account's own (mode {Convert.ToString((uint)st.st_mode, 8)}, owner uid {(uint)st.st_uid}, {(ulong)st.st_nlink} links); left alone");
            // Older SockShims made tables and descriptions 0666: any account could rewrite them.
            if (((uint)st.st_mode & 0b000_010_010) != 0)
                throw new UntrustedStateException(
                    $"{path} is writable by other accounts (mode {Convert.ToString((uint)st.st_mode & 0xFFF, 8)}; an older SockShim made it so), so what it says cannot be trusted; " +
                    $"remove the state directory {Path.GetDirectoryName(path)} (`rm -r`) when no process uses SockShim, and addresses a crash left with `ip addr del`");
            if (size is { } expected && (long)st.st_size != expected)
                throw new UntrustedStateException($"{path} has {(long)st.st_size} bytes, expected {expected}; remove it when no process uses the pool");
            return new FileStream(handle, FileAccess.ReadWrite);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Whether <paramref name="path"/> is a regular file of this account with one name
    /// that other accounts may write (mode 0666, as older SockShims made them), not followed.</summary>
    public static bool OwnButWritableByOthers(string path)
    {
        stat st;
        int result;
        fixed (byte* p = HostPaths.Bytes(path)) result = lstat(p, &st);
        return result == 0 && ((uint)st.st_mode & (uint)S_IFMT) == (uint)S_IFREG && (uint)st.st_uid == (uint)geteuid()
            && (ulong)st.st_nlink == 1 && ((uint)st.st_mode & 0b000_010_010) != 0;
    }

    /// <summary>Writes a new file under a random name (O_EXCL, mode 0644 set on the handle) and
    /// puts it at <paramref name="path"/>: <paramref name="replace"/> renames over what is there;
    /// otherwise it is linked only if nothing is (false when another process was first).</summary>
    public static bool Publish(string path, Action<FileStream> write, bool replace)
    {
        string temp = $"{path}.{Guid.NewGuid():N}.tmp";
        int fd;
        fixed (byte* p = HostPaths.Bytes(temp)) fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0b110_100_100);
        if (fd < 0) throw new UntrustedStateException($"{temp} cannot be made: {HostPaths.Strerror(errno)}");
        try
        {
            fchmod(fd, 0b110_100_100); // whatever the umask: others read (status), only this account writes
            using (var stream = new FileStream(new SafeFileHandle(fd, ownsHandle: true), FileAccess.ReadWrite)) write(stream);
            if (replace)
            {
                // rename(2): replaces the name (a link there is replaced, never followed).
                File.Move(temp, path, overwrite: true);
                return true;
            }
            int result;
            fixed (byte* from = HostPaths.Bytes(temp))
            fixed (byte* to = HostPaths.Bytes(path))
                result = link(from, to);
            if (result == 0) return true;
            if (!replace && errno == EEXIST) return false;
            throw new UntrustedStateException($"{path} cannot be written: {HostPaths.Strerror(errno)}");
        }
        finally
        {
            fixed (byte* p = HostPaths.Bytes(temp)) unlink(p);
        }
    }

    // The state directory's path with the directories above it resolved and judged.
    private static string TrustedParent(string path)
    {
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
        if (Path.GetDirectoryName(full) is not { } parent) throw new UntrustedStateException($"state directory {path} is the root directory; choose one such as /run/sockshim");
        if (HostPaths.Canonical(parent) is not { } canonical) throw new UntrustedStateException($"state directory {path} cannot be made: {parent} does not exist");
        if (HostPaths.Problem(canonical, toMakeIn: true) is { } problem)
            throw new UntrustedStateException(
                $"state directory {path} is in a directory another account could change: {problem}. SockShim keeps its tables only where every directory above them is root's or this account's " +
                "and no other account can write it (a root-owned sticky one such as /tmp is fine): choose another with --state-dir or SOCKSHIM_STATEDIR, or leave both unset for the default " +
                "(/run/sockshim for root; $XDG_RUNTIME_DIR/sockshim or /dev/shm/sockshim-UID for others)");
        return Path.Combine(canonical, Path.GetFileName(full));
    }
}
