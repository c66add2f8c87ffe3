using System.Globalization;

namespace SockShim.Stack.Claims;

/// <summary>Who holds a slot of a lease table: a pid together with that process's start time.
/// A pid alone is not enough: pids are reused, and a recycled pid would make a dead holder
/// look alive forever and leak its addresses.</summary>
internal static class ProcessIdentity
{
    // /proc/self, not /proc/PID: the /proc mounted here may be another pid namespace's.
    private static readonly Lazy<long> s_current = new(() =>
        StartTime("self", out _) is { } start ? ((long)Environment.ProcessId << 32) | (long)(uint)start | NamespaceMark(PidNamespace) : throw new InvalidOperationException("cannot read /proc/self/stat"));

    /// <summary>Whether the /proc mounted here is this process's own pid namespace's (not so
    /// after `unshare --pid` without remounting /proc): only then does /proc/PID tell anything.</summary>
    private static readonly Lazy<bool> s_procIsOurs = new(() => new FileInfo("/proc/self").LinkTarget == Environment.ProcessId.ToString(CultureInfo.InvariantCulture));

    /// <summary>This process's owner token: the low 32 bits of its start time (clock ticks since
    /// boot) in bits 0-31, its pid in bits 32-53 (pids are below 2^22), a 9-bit mark of its pid
    /// namespace in bits 54-62. Never 0, which marks a free slot.</summary>
    public static long Current => s_current.Value;

    // The namespace mark lets a slot caught half written (a process killed between its first
    // write and its seal) be judged by its owner word alone: a token marked with this process's
    // namespace is looked up in this /proc; any other mark is "cannot tell".
    private const long NamespaceBits = 0x1FFL << 54;

    public static long NamespaceMark(long pidNamespace) => (long)(((ulong)pidNamespace * 0x9E3779B97F4A7C15 >> 55) << 54);

    /// <summary>Whether <paramref name="token"/> carries this process's pid-namespace mark.</summary>
    public static bool MarkedWithOurNamespace(long token) => (token & NamespaceBits) == NamespaceMark(PidNamespace);

    /// <summary>Set in the owner word while its slot is being released, on the releaser's token
    /// (a token's top bit is otherwise 0: pids are below 2^22).</summary>
    public const long Releasing = long.MinValue;

    public static int PidOf(long token) => (int)((token & ~Releasing & ~NamespaceBits) >> 32);

    /// <summary>This process's pid namespace (the inode of /proc/self/ns/pid): a pid means a
    /// process only inside the namespace that gave it.</summary>
    public static long PidNamespace => s_pidNamespace.Value;
    private static readonly Lazy<long> s_pidNamespace = new(() => NamespaceInode("/proc/self/ns/pid"));

    internal static long NamespaceInode(string link)
    {
        // "/proc/self/ns/pid" links to "pid:[4026531836]"; the inode names the namespace.
        string? target = new FileInfo(link).LinkTarget;
        int open = target?.IndexOf('[') ?? -1;
        return open >= 0 && long.TryParse(target![(open + 1)..^1], NumberStyles.None, CultureInfo.InvariantCulture, out long inode) ? inode : 0;
    }

    /// <summary>
    /// False only when the process that wrote <paramref name="token"/> in pid namespace
    /// <paramref name="pidNamespace"/> is certainly gone. "Cannot tell" counts as alive: a holder
    /// of another pid namespace (a container sharing /dev/shm and the network), a claim whose
    /// namespace is not written yet (0), a /proc entry this process may not read (hidepid).
    /// </summary>
    public static bool IsAlive(long token, long pidNamespace)
    {
        token &= ~Releasing;
        if (token == 0) return false;
        if (pidNamespace == 0 || pidNamespace != PidNamespace || !s_procIsOurs.Value) return true;
        int pid = PidOf(token);
        if (pid == Environment.ProcessId) return token == Current;
        return StartTime(pid.ToString(CultureInfo.InvariantCulture), out bool certain) is { } start ? ((long)pid << 32 | (long)(uint)start) == (token & ~NamespaceBits) : !certain;
    }

    // The start time, or null with certain = true when the process is gone (no /proc entry, a
    // zombie) and certain = false when /proc cannot say.
    private static ulong? StartTime(string pid, out bool certain)
    {
        certain = true;
        string stat;
        try { stat = File.ReadAllText($"/proc/{pid}/stat"); }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            // hidepid hides even some processes of this account (non-dumpable ones, such as a
            // program given a capability): only the kernel's "no such process" is certain.
            certain = int.TryParse(pid, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && Tmds.Linux.LibC.kill(n, 0) != 0 && Tmds.Linux.LibC.errno == Tmds.Linux.LibC.ESRCH;
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { certain = false; return null; }
        // The command name (field 2) may contain spaces and parentheses: fields are counted
        // from the last ')'. starttime is field 22, the 20th after the name.
        int close = stat.LastIndexOf(')');
        var fields = close < 0 ? [] : stat[(close + 2)..].Split(' ');
        // A zombie has exited: what it held is free to reclaim.
        if (fields.Length >= 1 && fields[0] is "Z" or "X") return null;
        if (fields.Length < 20 || !ulong.TryParse(fields[19], NumberStyles.None, CultureInfo.InvariantCulture, out var t)) { certain = false; return null; }
        return t;
    }
}
