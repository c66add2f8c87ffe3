using System.Runtime.InteropServices;
using System.Text;

/// <summary>
/// Checks, with one statx and no hashing, that the woven System.Net.Sockets is still the file the
/// launcher hashed: same inode, size and change time. Writing a file (or replacing it) changes
/// its change time, which no account but root can set back, so bytes changed after the launcher's
/// check are caught here, in every app, for a few microseconds instead of the milliseconds of
/// loading the crypto stack and hashing the assembly.
/// </summary>
internal static unsafe class WovenRecord
{
    private const int AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100;
    private const uint STATX_BASIC_STATS = 0x7ff;

    // struct statx (include/uapi/linux/stat.h), the same on every architecture.
    private const int StxIno = 32, StxSize = 40, StxCtimeSec = 96, StxCtimeNsec = 104, StatxSize = 256;

    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static extern int statx(int dirfd, byte* path, int flags, uint mask, byte* buffer);

    /// <summary>A description of what differs, or null when the file is the one recorded in
    /// <paramref name="record"/> ("INODE:SIZE:CTIMESECONDS.NANOSECONDS:PATH").</summary>
    public static string? Check(string record, out string? path)
    {
        var parts = record.Split(':', 4);
        path = parts.Length == 4 ? parts[3] : null;
        if (path is null || path.Length == 0) return $"the launcher's record of the woven System.Net.Sockets is malformed ('{record}'). Start the app with `sockshim run`.";
        int length = Encoding.UTF8.GetByteCount(path);
        byte* name = stackalloc byte[length + 1];
        Encoding.UTF8.GetBytes(path, new Span<byte>(name, length));
        name[length] = 0;
        byte* st = stackalloc byte[StatxSize];
        string found = statx(AT_FDCWD, name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, st) != 0
            ? $"cannot be read (errno {Marshal.GetLastPInvokeError()})"
            : $"{*(ulong*)(st + StxIno)}:{*(ulong*)(st + StxSize)}:{*(long*)(st + StxCtimeSec)}.{*(uint*)(st + StxCtimeNsec):D9}";
        string expected = $"{parts[0]}:{parts[1]}:{parts[2]}";
        return found == expected ? null
            : $"the woven System.Net.Sockets {path} has changed since the launcher checked it against the SHA-256 recorded when it was woven " +
              $"(inode:size:change time {expected} then, {found} now). Start the app again with `sockshim run`, which checks it again and weaves a fresh copy when it differs.";
    }
}
