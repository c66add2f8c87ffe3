using System.Runtime.InteropServices;
using System.Text;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace SockShim.Interceptor.Launch;

/// <summary>
/// Replaces the launcher's process with the command (execve), so the app keeps the pid that
/// was started, gets every signal sent to it directly (no forwarding that can miss one, or
/// one sent to the launcher's process group twice), and its exit status is the command's
/// without a launcher waiting in between. Returns only when the command cannot be started.
/// </summary>
internal static unsafe class Exec
{
    /// <summary>Runs <paramref name="command"/> (looked up on PATH like a shell does, unless it
    /// names a path) in place of this process with <paramref name="changes"/> applied to this
    /// process's environment (null removes). Returns the shell's exit code for a command that
    /// cannot be run (127 not found, 126 not executable) with the reason.</summary>
    /// <remarks>With <paramref name="file"/> (one the caller has found and checked) that file is
    /// run, the command's own first word staying its name: a multi-call binary such as snap's
    /// `dotnet` decides by it.</remarks>
    public static int Replace(IReadOnlyList<string> command, IReadOnlyDictionary<string, string?> changes, out string why, string? file = null)
    {
        string? path = file ?? Resolve(command[0], Environment.GetEnvironmentVariable("PATH"));
        if (path is null)
        {
            why = $"'{command[0]}' was not found (not a path, and in no directory of PATH)";
            return 127;
        }
        var environment = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (System.Collections.DictionaryEntry e in Environment.GetEnvironmentVariables()) environment[(string)e.Key] = (string?)e.Value ?? "";
        foreach (var (k, v) in changes)
        {
            if (v is null) environment.Remove(k);
            else environment[k] = v;
        }
        Console.Out.Flush();
        Console.Error.Flush();
        RemoveRuntimeEndpoints();
        RestoreSignals();
        var strings = new List<IntPtr>();
        try
        {
            byte* program = Native(path, strings);
            byte** argv = Array(command, strings);
            byte** envp = Array(environment.Select(e => $"{e.Key}={e.Value}").ToList(), strings);
            execve(program, argv, envp);
            int error = errno;
            why = $"cannot start '{command[0]}' ({path}): {Marshal.GetPInvokeErrorMessage(error)}";
            return error == ENOENT ? 127 : 126;
        }
        finally
        {
            foreach (var p in strings) NativeMemory.Free((void*)p);
        }
    }

    // The .NET runtime of this process listens for diagnostics tools (dotnet-counters, -trace)
    // on $TMPDIR/dotnet-diagnostic-PID-KEY-socket, KEY being the process's start time (field 22
    // of /proc/self/stat); execve keeps both, so the app's runtime would find the name taken and
    // have no diagnostics server at all. Its debugger's two FIFOs, clr-debug-pipe-PID-KEY-in and
    // -out, would never be removed (the runtime removes them when it exits, and it never does):
    // two more files in /tmp each time a command that is not .NET is run. Only these names are
    // removed, each when it is a socket (a FIFO) this account owns, never followed (the directory
    // is shared): the same pid with another KEY is another process, in another pid namespace
    // sharing this /tmp (a container's pid 1), or gone.
    private static void RemoveRuntimeEndpoints()
    {
        // A Native AOT process (the launcher) has no diagnostics server.
        if (!System.Runtime.CompilerServices.RuntimeFeature.IsDynamicCodeSupported) return;
        string text;
        try { text = File.ReadAllText("/proc/self/stat"); }
        catch (IOException) { return; }
        catch (UnauthorizedAccessException) { return; }
        // The command name (field 2) may hold spaces and parentheses: fields count from the last ')'.
        int close = text.LastIndexOf(')');
        var fields = close < 0 || close + 2 > text.Length ? [] : text[(close + 2)..].Split(' ');
        if (fields.Length < 20 || !ulong.TryParse(fields[19], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out ulong start)) return;
        string directory = Path.GetTempPath();
        string key = $"{Environment.ProcessId}-{start}";
        RemoveOwn(Path.Combine(directory, $"dotnet-diagnostic-{key}-socket"), (uint)S_IFSOCK);
        RemoveOwn(Path.Combine(directory, $"clr-debug-pipe-{key}-in"), (uint)S_IFIFO);
        RemoveOwn(Path.Combine(directory, $"clr-debug-pipe-{key}-out"), (uint)S_IFIFO);
    }

    private static void RemoveOwn(string path, uint type)
    {
        fixed (byte* p = Encoding.UTF8.GetBytes(path + "\0"))
        {
            stat st;
            if (lstat(p, &st) == 0 && ((uint)st.st_mode & (uint)S_IFMT) == type && (uint)st.st_uid == geteuid()) unlink(p);
        }
    }

    // What a process gets from the one that starts it: .NET ignores SIGPIPE for itself (a write
    // to a closed socket is an exception there), and a command started from a shell expects it
    // to kill (`app | head`); handled signals go back to their default by execve itself, and
    // nothing is blocked.
    private static void RestoreSignals()
    {
        sigaction dfl = default;
        dfl.sa_handler = (void*)0; // SIG_DFL
        sigaction(SIGPIPE, &dfl, null);
        sigset_t none;
        sigemptyset(&none);
        pthread_sigmask(SIG_SETMASK, &none, null);
    }

    /// <summary>A shell's lookup: a name with a slash is a path; otherwise the first executable
    /// regular file of that name in PATH (an empty entry is the current directory). As root a
    /// relative entry, the current directory included, is skipped: what root runs is never found
    /// wherever it happens to stand.</summary>
    internal static string? Resolve(string name, string? pathVariable)
    {
        if (name.Contains('/')) return name;
        bool root = geteuid() == 0;
        foreach (var directory in (pathVariable ?? "/usr/local/bin:/usr/bin:/bin").Split(':'))
        {
            if (root && !directory.StartsWith('/')) continue;
            string candidate = Path.Combine(directory.Length == 0 ? "." : directory, name);
            if (!File.Exists(candidate)) continue;
            fixed (byte* c = Encoding.UTF8.GetBytes(candidate + "\0"))
                if (access(c, X_OK) == 0) return candidate;
        }
        return null;
    }

    private static byte* Native(string s, List<IntPtr> owned)
    {
        int length = Encoding.UTF8.GetByteCount(s);
        byte* p = (byte*)NativeMemory.Alloc((nuint)length + 1);
        Encoding.UTF8.GetBytes(s, new Span<byte>(p, length));
        p[length] = 0;
        owned.Add((IntPtr)p);
        return p;
    }

    // A NULL-terminated array of C strings, as execve takes its argv and envp.
    private static byte** Array(IReadOnlyList<string> items, List<IntPtr> owned)
    {
        byte** a = (byte**)NativeMemory.Alloc((nuint)(items.Count + 1), (nuint)sizeof(byte*));
        for (int i = 0; i < items.Count; i++) a[i] = Native(items[i], owned);
        a[items.Count] = null;
        owned.Add((IntPtr)a);
        return a;
    }
}
