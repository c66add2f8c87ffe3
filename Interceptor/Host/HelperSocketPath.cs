using System.Net.Sockets;
using System.Text;
using SockShim.Stack.Claims;
using SockShim.Stack.Configuration;
using SockShim.Stack.Interop;
using static Tmds.Linux.LibC;

namespace SockShim.Interceptor.Host;

/// <summary>
/// Where `sockshim serve` listens, made as root can make it safely. The socket is created, its
/// mode set (a socket's descriptor cannot chmod its name) and a stale one removed, all by path:
/// in a directory another account could change, or through a link it could re-point, the name
/// could lead elsewhere in between and root would chmod or delete what it leads to. So the
/// directory is found once by the path the kernel resolves, judged with every directory above
/// it (root's or this account's, writable by no other account; a root-owned sticky one such as
/// /tmp is fine for the socket or a directory made in it), and everything after goes through
/// that path: there no other account can swap an entry.
/// </summary>
internal static unsafe class HelperSocketPath
{
    /// <summary>The longest path a Unix socket address holds (sun_path less its terminating zero).</summary>
    public const int MaxLength = 107;

    public const string Example = "/run/sockshim/helper.sock";

    /// <summary>The socket's path with the directories above it resolved, after the user's
    /// mistakes (exit 2, one line) and the trust of those directories are checked; nothing is
    /// made. The directories still missing are made by <see cref="Listen"/>.</summary>
    public static string Check(string path)
    {
        string? why = !Path.IsPathFullyQualified(path) ? "the helper's socket needs an absolute path"
            : path.EndsWith('/') ? "it names a directory, not the socket in it" : null;
        string resolved = why is null ? SocketIn(Resolve(path, out var missing), missing, path) : path;
        if (why is null && Encoding.UTF8.GetByteCount(resolved) > MaxLength)
            why = $"a Unix socket path is at most {MaxLength} bytes, this one has {Encoding.UTF8.GetByteCount(resolved)}{(resolved == path ? "" : $" as {resolved}, with the links above it resolved")}";
        if (why is not null) throw new ConfigurationException(new SettingProblem("--socket", path, why, Example));
        return resolved;
    }

    private static string SocketIn(string directory, List<string> missing, string given) =>
        Path.Combine([directory, .. missing, Path.GetFileName(given)]);

    /// <summary>Makes the missing directories (0755, each judged as made), removes a socket a
    /// helper of this account left (never anything else, nor a socket a live helper serves on),
    /// binds and lets every account connect (mode 0666: each request is judged by the caller's
    /// credentials). <paramref name="checkedPath"/> is what <see cref="Check"/> returned.</summary>
    public static Socket Listen(string given, string checkedPath)
    {
        string directory = Resolve(given, out var missing);
        foreach (var name in missing)
        {
            directory = Path.Combine(directory, name);
            int made;
            fixed (byte* p = HostPaths.Bytes(directory)) made = mkdir(p, 0b111_101_101);
            if (made != 0 && errno != EEXIST) throw new UntrustedStateException($"--socket {given}: {directory} cannot be made: {HostPaths.Strerror(errno)}");
            if (HostPaths.Problem(directory, toMakeIn: true) is { } problem) throw Refused(given, problem);
        }
        string path = Path.Combine(directory, Path.GetFileName(given));
        if (path != checkedPath) throw new UntrustedStateException($"--socket {given}: it led to {checkedPath} when checked and to {path} now; a directory on the way changed");
        RemoveStale(path, given);
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            listener.Bind(new UnixDomainSocketEndPoint(path));
            File.SetUnixFileMode(path, (UnixFileMode)0b110_110_110);
            return listener;
        }
        catch (SocketException ex)
        {
            listener.Dispose();
            throw new UntrustedStateException($"--socket {given}: cannot listen on {path}: {ex.Message}; choose another path");
        }
    }

    // The nearest directory above the socket that exists, by its canonical path and judged, and
    // the names below it still to be made.
    private static string Resolve(string given, out List<string> missing)
    {
        string full = Path.GetFullPath(given);
        missing = [];
        string existing = Path.GetDirectoryName(full)!;
        string? canonical;
        while ((canonical = HostPaths.Canonical(existing)) is null)
        {
            missing.Insert(0, Path.GetFileName(existing));
            existing = Path.GetDirectoryName(existing)!;
        }
        if (HostPaths.Problem(canonical, toMakeIn: true) is { } problem) throw Refused(given, problem);
        return canonical;
    }

    private static UntrustedStateException Refused(string given, Untrusted problem) => new(
        $"--socket {given}: {problem}; the helper makes its socket only where no other account can change a directory on the way (root or this account owns each, and no other account can write it; a root-owned sticky one such as /tmp is fine), " +
        $"such as {Path.GetDirectoryName(Example)}");

    /// <summary>A socket a helper of this account left goes; one a live helper still answers on,
    /// or anything else there (a file, a link, another account's socket), is never deleted.</summary>
    private static void RemoveStale(string path, string given)
    {
        Tmds.Linux.stat st;
        int found;
        fixed (byte* p = HostPaths.Bytes(path)) found = lstat(p, &st);
        if (found != 0) return;
        bool socket = ((uint)st.st_mode & (uint)S_IFMT) == (uint)S_IFSOCK;
        if (!socket || (uint)st.st_uid != geteuid())
            throw new UntrustedStateException(
                $"--socket {given}: {path} is {(socket ? $"a socket of uid {(uint)st.st_uid}" : "not a socket")}; the helper deletes only a socket of its own a previous helper left there. Remove it yourself if it is not needed, or choose another path");
        using (var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            try
            {
                probe.Connect(new UnixDomainSocketEndPoint(path));
                throw new UntrustedStateException($"--socket {given}: a helper already serves on {path}; stop it first, or choose another path");
            }
            catch (SocketException) { } // nobody listens: stale
        }
        File.Delete(path);
    }
}
