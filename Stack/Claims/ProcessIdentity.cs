using System.Globalization;

namespace SockShim.Stack.Claims;

/// <summary>Who holds a slot of a lease table: a pid together with that process's start time.
/// A pid alone is not enough: pids are reused, and a recycled pid would make a dead holder
/// look alive forever and leak its addresses.</summary>
internal static class ProcessIdentity
{
    private static readonly Lazy<long> s_current = new(() => TokenFor(Environment.ProcessId) ?? throw new InvalidOperationException("cannot read /proc/self/stat"));

    /// <summary>This process's owner token: pid in the high 32 bits, the low 32 bits of its start
    /// time (clock ticks since boot) in the low 32 bits. Never 0, which marks a free slot.</summary>
    public static long Current => s_current.Value;

    public static int PidOf(long token) => (int)(token >> 32);

    public static long? TokenFor(int pid)
    {
        ulong? start = StartTime(pid);
        return start is null ? null : ((long)pid << 32) | (long)(uint)start.Value;
    }

    /// <summary>True while the process that wrote <paramref name="token"/> still runs.</summary>
    public static bool IsAlive(long token)
    {
        if (token == 0) return false;
        int pid = PidOf(token);
        if (pid == Environment.ProcessId) return token == Current;
        return TokenFor(pid) == token;
    }

    private static ulong? StartTime(int pid)
    {
        string stat;
        try { stat = File.ReadAllText($"/proc/{pid}/stat"); }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
        // The command name (field 2) may contain spaces and parentheses: fields are counted
        // from the last ')'. starttime is field 22, the 20th after the name.
        int close = stat.LastIndexOf(')');
        if (close < 0) return null;
        var fields = stat[(close + 2)..].Split(' ');
        // A zombie has exited: what it held is free to reclaim.
        if (fields.Length < 20 || fields[0] == "Z" || fields[0] == "X") return null;
        return ulong.TryParse(fields[19], NumberStyles.None, CultureInfo.InvariantCulture, out var t) ? t : null;
    }
}
