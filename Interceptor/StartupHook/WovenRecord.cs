using System.Runtime.InteropServices;
using System.Text;

// Blittable P/Invokes only: ReadyToRun then compiles the call to statx ahead of time, so the
// check costs the app no stub generation at start-up.
[assembly: System.Runtime.CompilerServices.DisableRuntimeMarshalling]

/// <summary>
/// Checks, with one statx and no hashing, that the woven System.Net.Sockets is still the file the
/// launcher hashed: same inode, size and change time. Writing a file (or replacing it) changes
/// its change time, which no account but root can set back, so bytes changed after the launcher's
/// check are caught here, in every app, for a fraction of a millisecond instead of the tens of milliseconds of
/// loading the crypto stack and hashing the assembly (measured in the app: 0.2 ms for the
/// first statx, 22-39 ms for a SHA-256 of the woven file).
/// </summary>
internal static unsafe class WovenRecord
{
    private const int AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100;
    private const uint STATX_BASIC_STATS = 0x7ff;

    // struct statx (include/uapi/linux/stat.h), the same on every architecture.
    private const int StxIno = 32, StxSize = 40, StxCtimeSec = 96, StxCtimeNsec = 104, StatxSize = 256;

    [DllImport("libc.so.6", EntryPoint = "statx")]
    private static extern int statx(int dirfd, byte* path, int flags, uint mask, byte* buffer);

    /// <summary>A description of what differs, or null when the file is the one recorded in
    /// <paramref name="record"/> ("INODE:SIZE:CTIMESECONDS.NANOSECONDS:PATH").</summary>
    public static string? Check(string record, out string? path)
    {
        // "INODE:SIZE:CTIME:PATH": the path is everything after the third colon.
        int colon = -1;
        for (int i = 0; i < 3 && colon < record.Length; i++) colon = record.IndexOf(':', colon + 1) is var next and >= 0 ? next : record.Length;
        path = colon < record.Length - 1 ? record[(colon + 1)..] : null;
        if (path is null) return $"the launcher's record of the woven System.Net.Sockets is malformed ('{record}'). Start the app with `sockshim run`.";
        string expected = record[..colon];
        byte* name = stackalloc byte[path.Length * 3 + 1];
        int length = Encoding.UTF8.GetBytes(path, new Span<byte>(name, path.Length * 3));
        name[length] = 0;
        byte* st = stackalloc byte[StatxSize];
        string found = statx(AT_FDCWD, name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, st) != 0
            ? "unreadable"
            : $"{*(ulong*)(st + StxIno)}:{*(ulong*)(st + StxSize)}:{*(long*)(st + StxCtimeSec)}.{*(uint*)(st + StxCtimeNsec):D9}";
        return found == expected ? null
            : $"the woven System.Net.Sockets {path} has changed since the launcher checked it against the SHA-256 recorded when it was woven " +
              $"(inode:size:change time {expected} then, {found} now). Start the app again with `sockshim run`, which checks it again and weaves a fresh copy when it differs.";
    }
}
