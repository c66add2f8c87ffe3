using System.Runtime.InteropServices;

/// <summary>
/// A holder that /proc hides from processes of its own account under hidepid: non-dumpable, as
/// every process that ran a program given a capability or a set-user-ID bit is, and as agents that
/// keep secrets (ssh-agent, gpg-agent) make themselves. /proc/PID of a non-dumpable process is
/// root's, and with hidepid only a process with CAP_SYS_PTRACE may see it.
/// </summary>
internal static partial class Hidden
{
    private const int PR_SET_DUMPABLE = 4;

    // Tmds.LibC has no prctl binding.
    [LibraryImport("libc", SetLastError = true)]
    private static partial int prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);

    public static void MakeNonDumpable()
    {
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) throw new InvalidOperationException($"prctl(PR_SET_DUMPABLE, 0) failed: errno {Marshal.GetLastPInvokeError()}");
    }
}
