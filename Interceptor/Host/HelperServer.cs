using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using SockShim.Stack;
using SockShim.Stack.Configuration;
using SockShim.Stack.Pools;
using SockShim.Stack.Wire;

namespace SockShim.Interceptor.Host;

/// <summary>
/// `sockshim serve`: the one process with CAP_NET_ADMIN (and port 68 for DHCP). It owns the
/// configured pools and hands addresses to unprivileged processes over a Unix socket. Each
/// request is authorized by the peer's credentials (SO_PEERCRED: uid, gid, pid; supplementary
/// groups from SO_PEERGROUPS, as they were at connect) against the grants; quotas count a user's live addresses across all its
/// connections. A connection's addresses are released when it closes, so a client that exits or
/// is killed gives back everything it held.
/// </summary>
public sealed class HelperServer : IDisposable
{
    private readonly AddressStack _stack;
    private readonly Grants _grants;
    private readonly ILogger _log;
    private readonly Socket _listener;
    private readonly Dictionary<uint, int> _perUser = new();
    private readonly object _gate = new();
    private readonly CancellationTokenSource _stop = new();
    private Task? _accepting;

    public string SocketPath { get; }

    public HelperServer(AddressStack stack, Grants grants, string socketPath, ILogger log)
    {
        _stack = stack;
        _grants = grants;
        _log = log;
        SocketPath = socketPath;
        Directory.CreateDirectory(Path.GetDirectoryName(socketPath)!);
        RemoveStaleSocket(socketPath);
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        // Anyone may connect; what they get is decided per request by their credentials.
        File.SetUnixFileMode(socketPath, (UnixFileMode)0b110_110_110);
        _listener.Listen(512);
    }

    public void Start() => _accepting = Task.Run(AcceptLoop);

    /// <summary>A socket a helper that died left at <paramref name="path"/> goes; anything else
    /// there (a file, a link, another account's socket) is never deleted: the helper refuses.</summary>
    private static unsafe void RemoveStaleSocket(string path)
    {
        Tmds.Linux.stat st;
        int found;
        fixed (byte* p = System.Text.Encoding.UTF8.GetBytes(path + "\0")) found = Tmds.Linux.LibC.lstat(p, &st);
        if (found != 0) return;
        bool socket = ((uint)st.st_mode & (uint)Tmds.Linux.LibC.S_IFMT) == (uint)Tmds.Linux.LibC.S_IFSOCK;
        if (!socket || (uint)st.st_uid != Tmds.Linux.LibC.geteuid())
            throw new SockShim.Stack.Claims.UntrustedStateException(
                $"--socket {path} is {(socket ? $"a socket of uid {(uint)st.st_uid}" : "not a socket")}; the helper deletes only a socket of its own a previous helper left there. Remove it yourself if it is not needed, or choose another path");
        File.Delete(path);
    }

    /// <summary>Live addresses a user holds through the helper now.</summary>
    public int HeldBy(uint uid) { lock (_gate) return _perUser.GetValueOrDefault(uid); }

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket peer;
            try { peer = await _listener.AcceptAsync(_stop.Token); }
            catch (Exception) when (_stop.IsCancellationRequested) { return; }
            catch (SocketException ex) { _log.LogWarning("accept failed: {Error}", ex.SocketErrorCode); continue; }
            _ = Task.Run(async () =>
            {
                // One client's failure must never stop the others, nor leave its socket open.
                try { await Serve(peer); }
                catch (Exception ex)
                {
                    _log.LogError(ex, "serving a client failed");
                    peer.Dispose();
                }
            });
        }
    }

    private readonly record struct Peer(int Pid, uint Uid, uint Gid, IReadOnlyCollection<uint> Groups)
    {
        public override string ToString() => $"pid {Pid} (uid {Uid}, gid {Gid})";
    }

    private static Peer Credentials(Socket s)
    {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
        Span<byte> cred = stackalloc byte[12];
        s.GetRawSocketOption(Tmds.Linux.LibC.SOL_SOCKET, Tmds.Linux.LibC.SO_PEERCRED, cred);
        int pid = BitConverter.ToInt32(cred);
        uint uid = BitConverter.ToUInt32(cred[4..]), gid = BitConverter.ToUInt32(cred[8..]);
        // The groups the peer had when it connected (SO_PEERGROUPS), not /proc's now: the pid
        // may have exited and been reused by then.
        var groups = new HashSet<uint> { gid };
        Span<byte> list = stackalloc byte[4 * 1024];
        int length = s.GetRawSocketOption(Tmds.Linux.LibC.SOL_SOCKET, Tmds.Linux.LibC.SO_PEERGROUPS, list);
        for (int i = 0; i + 4 <= length; i += 4) groups.Add(BitConverter.ToUInt32(list[i..]));
        return new Peer(pid, uid, gid, groups);
    }

    private async Task Serve(Socket socket)
    {
        var peer = Credentials(socket);
        var held = new Dictionary<IPAddress, Lease>();
        var buffer = new byte[HelperMessage.MaxLine + 1];
        int filled = 0;
        try
        {
            using var stream = new NetworkStream(socket, ownsSocket: true);
            while (true)
            {
                int newline = Array.IndexOf(buffer, (byte)'\n', 0, filled);
                if (newline < 0)
                {
                    if (filled == buffer.Length)
                    {
                        // No newline within the longest legal line: not a client of ours.
                        _log.LogWarning("{Peer}: refused a request longer than {Max} bytes; connection closed", peer, HelperMessage.MaxLine);
                        await Answer(stream, HelperMessage.Error(HelperMessage.BadRequest, $"requests are at most {HelperMessage.MaxLine} bytes"));
                        await HangUp(socket);
                        return;
                    }
                    int n = await stream.ReadAsync(buffer.AsMemory(filled), _stop.Token);
                    if (n == 0) return;
                    filled += n;
                    continue;
                }
                string answer = Handle(peer, buffer.AsSpan(0, newline), held);
                Array.Copy(buffer, newline + 1, buffer, 0, filled - newline - 1);
                filled -= newline + 1;
                await Answer(stream, answer);
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException) { }
        finally
        {
            int released = 0;
            foreach (var lease in held.Values) if (Release(peer, lease)) released++;
            if (released > 0) _log.LogInformation("{Peer} disconnected: released its {Count} addresses", peer, released);
        }
    }

    // Closing with unread input makes the kernel reset the connection, and the client would lose
    // the answer: stop sending, swallow a little of what is left (bounded), then close.
    private static async Task HangUp(Socket socket)
    {
        socket.Shutdown(SocketShutdown.Send);
        var sink = new byte[4096];
        using var limit = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        try
        {
            for (int total = 0; total < 64 * 1024;)
            {
                int n = await socket.ReceiveAsync(sink, SocketFlags.None, limit.Token);
                if (n == 0) break;
                total += n;
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException) { }
    }

    private static Task Answer(NetworkStream stream, string line) => stream.WriteAsync(Encoding.ASCII.GetBytes(line + "\n")).AsTask();

    private string Handle(Peer peer, ReadOnlySpan<byte> line, Dictionary<IPAddress, Lease> held)
    {
        if (!HelperMessage.TryParseRequest(line, out var request, out string why))
        {
            _log.LogWarning("{Peer}: refused a malformed request: {Why}", peer, why);
            return HelperMessage.Error(HelperMessage.BadRequest, why);
        }
        switch (request.Verb)
        {
            case HelperMessage.Describe:
            {
                // A pool's ranges are no secret; whether this user may take from it is decided per ACQUIRE,
                // so a refusal reaches the app as a SocketException at its socket rather than at start-up.
                if (Refusal(peer, request.Argument, out var pool, checkGrant: false) is { } refused) return refused;
                return HelperMessage.Ok(JsonSerializer.Serialize(pool!.Description));
            }
            case HelperMessage.Acquire:
            {
                if (Refusal(peer, request.Argument, out var pool) is { } refused) return refused;
                int quota = _grants.QuotaFor(peer.Uid, peer.Groups, pool!.Name)!.Value;
                lock (_gate)
                {
                    int used = _perUser.GetValueOrDefault(peer.Uid);
                    if (used >= quota)
                    {
                        _log.LogWarning("{Peer}: refused an address from pool {Pool}: quota of {Quota} reached", peer, pool.Name, quota);
                        return HelperMessage.Error(HelperMessage.OverQuota, $"uid {peer.Uid} already holds {used} addresses, its quota for pool '{pool.Name}' is {quota}");
                    }
                    _perUser[peer.Uid] = used + 1;
                }
                if (!pool.TryAcquire($"helper for {peer}", out var lease, out var error))
                {
                    lock (_gate) _perUser[peer.Uid]--;
                    return HelperMessage.Error(HelperMessage.Exhausted, error!.Message);
                }
                lock (held) held[lease.Address] = lease;
                _log.LogInformation("{Peer}: {Address} from pool {Pool}", peer, lease.Address, pool.Name);
                return HelperMessage.Ok(lease.Address.ToString());
            }
            default: // RELEASE
            {
                Lease? lease = null;
                lock (held)
                    if (IPAddress.TryParse(request.Argument, out var address) && held.Remove(address, out lease)) { }
                if (lease is null)
                {
                    _log.LogWarning("{Peer}: refused to release {Address}, which this connection does not hold", peer, HelperMessage.Truncate(request.Argument));
                    return HelperMessage.Error(HelperMessage.NotHeld, $"this connection holds no address '{HelperMessage.Truncate(request.Argument)}'");
                }
                Release(peer, lease);
                return HelperMessage.Ok(lease.Address.ToString());
            }
        }
    }

    private bool Release(Peer peer, Lease lease)
    {
        if (!lease.Release()) return false;
        lock (_gate) _perUser[peer.Uid]--;
        return true;
    }

    private string? Refusal(Peer peer, string poolName, out AddressPool? pool, bool checkGrant = true)
    {
        pool = _stack.Pools.FirstOrDefault(p => string.Equals(p.Name, poolName, StringComparison.OrdinalIgnoreCase));
        if (pool is null)
        {
            _log.LogWarning("{Peer}: asked for unknown pool {Pool}", peer, HelperMessage.Truncate(poolName));
            return HelperMessage.Error(HelperMessage.UnknownPool, $"the helper serves no pool '{HelperMessage.Truncate(poolName)}'");
        }
        if (checkGrant && _grants.QuotaFor(peer.Uid, peer.Groups, pool.Name) is null)
        {
            _log.LogWarning("{Peer}: refused pool {Pool}: no grant", peer, pool.Name);
            return HelperMessage.Error(HelperMessage.NotGranted, $"uid {peer.Uid} has no grant for pool '{pool.Name}'");
        }
        return null;
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Dispose();
        try { _accepting?.Wait(TimeSpan.FromSeconds(2)); } catch (AggregateException) { }
        try { File.Delete(SocketPath); } catch (IOException) { }
    }
}
