using System.Runtime.InteropServices;

namespace SockShim.Interceptor.Host;

/// <summary>
/// The helper's room for open files. Out of descriptors, the runtime itself fails (it opens files
/// to load code and to start threads; tried: the process died with "Out of memory."), so its
/// connections may never take the last <see cref="Headroom"/> of them. Linux hands out the lowest
/// free descriptor, so a new connection's number tells how close to the limit the process is.
/// </summary>
internal static partial class Descriptors
{
    /// <summary>Descriptors kept for everything but connections: loading code, threads, netlink, DHCP, logs.</summary>
    public const int Headroom = 32;

    /// <summary>Why a connection with descriptor <paramref name="fd"/> leaves too little room, or null.</summary>
    public static string? TooFew(long fd)
    {
        long limit = Limit();
        return fd >= limit - Headroom
            ? $"the helper is near its limit of {limit} open files (connection descriptor {fd}); try again later"
            : null;
    }

    /// <summary>The soft RLIMIT_NOFILE now (an operator may change it with prlimit while it runs).</summary>
    public static long Limit() => getrlimit(RLIMIT_NOFILE, out var limit) == 0 ? (long)Math.Min(limit.Current, long.MaxValue) : long.MaxValue;

    // getrlimit(2): not in Tmds.LibC. RLIMIT_NOFILE is 7 on every Linux architecture .NET runs on.
    private const int RLIMIT_NOFILE = 7;

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current, Maximum;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int getrlimit(int resource, out RLimit limit);
}
