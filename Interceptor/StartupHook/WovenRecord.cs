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
/// The record's numbers are read and compared as numbers: text is made only for a message.
/// Every framework method first used here is paid for in the app's first socket (its
/// ReadyToRun fixups, the types it loads), so this uses as few as it can.
/// </summary>
internal static unsafe class WovenRecord
{
    private const int AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100;
    private const uint STATX_BASIC_STATS = 0x7ff;
    private const ushort S_IFMT = 0xF000, S_IFREG = 0x8000;

    // struct statx (include/uapi/linux/stat.h), the same on every architecture.
    private const int StxMode = 28, StxIno = 32, StxSize = 40, StxCtimeSec = 96, StxCtimeNsec = 104, StxMtimeSec = 112, StxMtimeNsec = 120, StatxSize = 256;

    [DllImport("libc.so.6", EntryPoint = "statx")]
    private static extern int statx(int dirfd, byte* path, int flags, uint mask, byte* buffer);

    /// <summary>_exit(2): the process ends now, running nothing of the app's.</summary>
    [DllImport("libc.so.6", EntryPoint = "_exit")]
    public static extern void Exit(int status);

    /// <summary>What statx says of a file (links followed only when asked).</summary>
    // Not a record struct: its generated equality would reach EqualityComparer (System.Collections).
    public readonly struct FileStat(bool regular, ulong inode, ulong size, long changedSeconds, uint changedNanoseconds, long modifiedSeconds, uint modifiedNanoseconds)
    {
        public bool Regular => regular;
        public ulong Inode => inode;
        public ulong Size => size;
        public long ChangedSeconds => changedSeconds;
        public uint ChangedNanoseconds => changedNanoseconds;
        public long ModifiedSeconds => modifiedSeconds;
        public uint ModifiedNanoseconds => modifiedNanoseconds;

        /// <summary>The last write time as FileInfo.LastWriteTimeUtc.Ticks gives it.</summary>
        public long ModifiedTicks => DateTime.UnixEpoch.Ticks + ModifiedSeconds * TimeSpan.TicksPerSecond + ModifiedNanoseconds / 100;
    }

    /// <returns>Null when the file cannot be read.</returns>
    public static FileStat? Stat(string path, bool followLinks = false)
    {
        // The pointer overload: the span one is an extension method of System.Memory, an assembly
        // the app would load for it.
        byte* name = stackalloc byte[path.Length * 3 + 1];
        int length;
        fixed (char* chars = path) length = Encoding.UTF8.GetBytes(chars, path.Length, name, path.Length * 3);
        name[length] = 0;
        byte* st = stackalloc byte[StatxSize];
        if (statx(AT_FDCWD, name, followLinks ? 0 : AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, st) != 0) return null;
        return new FileStat((*(ushort*)(st + StxMode) & S_IFMT) == S_IFREG, *(ulong*)(st + StxIno), *(ulong*)(st + StxSize),
            *(long*)(st + StxCtimeSec), *(uint*)(st + StxCtimeNsec), *(long*)(st + StxMtimeSec), *(uint*)(st + StxMtimeNsec));
    }

    /// <summary>A description of what differs, or null when the file is the one recorded in
    /// <paramref name="record"/> ("INODE:SIZE:CTIMESECONDS.NANOSECONDS:PATH").</summary>
    public static string? Check(string record, out string? path)
    {
        int at = 0;
        if (!(Number(record, ref at, ':', out ulong inode) && Number(record, ref at, ':', out ulong size)
            && Number(record, ref at, '.', out ulong seconds) && Number(record, ref at, ':', out ulong nanoseconds) && at < record.Length))
        {
            path = null;
            return $"the launcher's record of the woven System.Net.Sockets is malformed ('{record}'). Start the app with `sockshim run`.";
        }
        path = record.Substring(at);
        var found = Stat(path);
        if (found is { } f && f.Inode == inode && f.Size == size && (ulong)f.ChangedSeconds == seconds && f.ChangedNanoseconds == nanoseconds) return null;
        return $"the woven System.Net.Sockets {path} has changed since the launcher checked it against the SHA-256 recorded when it was woven " +
               $"(inode:size:change time {record[..(record.Length - path.Length - 1)]} then, " +
               $"{(found is { } g ? $"{g.Inode}:{g.Size}:{g.ChangedSeconds}.{g.ChangedNanoseconds:D9}" : "unreadable")} now). " +
               "Start the app again with `sockshim run`, which checks it again and weaves a fresh copy when it differs.";
    }

    /// <summary>Reads decimal digits at <paramref name="at"/> up to <paramref name="end"/> (and
    /// past it); false for no digits, another character, or a number past ulong.</summary>
    public static bool Number(string text, ref int at, char end, out ulong value)
    {
        if (!Digits(text, ref at, out value) || at >= text.Length || text[at] != end) return false;
        at++;
        return true;
    }

    /// <summary><paramref name="text"/> as a whole is a decimal number.</summary>
    public static bool Number(string text, out ulong value)
    {
        int at = 0;
        return Digits(text, ref at, out value) && at == text.Length;
    }

    private static bool Digits(string text, ref int at, out ulong value)
    {
        value = 0;
        int start = at;
        for (; at < text.Length && text[at] >= '0' && text[at] <= '9'; at++)
        {
            uint digit = (uint)(text[at] - '0');
            if (value > (ulong.MaxValue - digit) / 10) return false;
            value = value * 10 + digit;
        }
        return at > start;
    }
}
