using System.Net;
using System.Net.Sockets;
using System.Text;
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
/// is killed gives back everything it held. Any account may connect, so what one can take of the
/// helper is bounded (<see cref="HelperLimits"/>): connections in all and per user, the time a
/// connection may idle holding nothing or stop mid-request, the length of a request; and a
/// failing accept (out of descriptors) is retried with a growing pause, not in a spin.
/// </summary>
public sealed class HelperServer : IDisposable
{
    private readonly AddressStack _stack;
    private readonly Grants _grants;
    private readonly ILogger _log;
    private readonly Socket _listener;
    private readonly HelperLimits _limits;
    private readonly HelperClients _clients;
    // Lines about refusals, bounded; the accounts no grant names have a budget of their own, so
    // they cannot crowd out what is said about the accounts with grants.
    private readonly RefusalLog _refusals, _ungrantedRefusals;
    private readonly CancellationTokenSource _stop = new();
    private Task? _accepting;

    public string SocketPath { get; }

    public HelperServer(AddressStack stack, Grants grants, string socketPath, ILogger log, HelperLimits? limits = null)
    {
        _stack = stack;
        _grants = grants;
        _log = log;
        _limits = limits ?? HelperLimits.Default;
        _clients = new HelperClients(_limits);
        _refusals = new RefusalLog(log);
        _ungrantedRefusals = new RefusalLog(log);
        // Anyone may connect; what they get is decided per request by their credentials.
        SocketPath = HelperSocketPath.Check(socketPath);
        _listener = HelperSocketPath.Listen(socketPath, SocketPath);
        _listener.Listen(512);
    }

    public void Start()
    {
        // The runtime starts its timer thread at the first timer, and starting a thread needs a
        // descriptor: started only when the descriptors have run out, it fails, and then no idle
        // timeout and no accept pause would ever fire. So the first timer runs now.
        Task.Delay(1).Wait();
        _accepting = Task.Run(AcceptLoop);
    }

    /// <summary>Live addresses a user holds through the helper now.</summary>
    public int HeldBy(uint uid) => _clients.HeldBy(uid);

    private async Task AcceptLoop()
    {
        int failures = 0;
        while (!_stop.IsCancellationRequested)
        {
            Socket peer;
            try { peer = await _listener.AcceptAsync(_stop.Token); }
            catch (Exception) when (_stop.IsCancellationRequested) { return; }
            catch (SocketException ex)
            {
                // Out of descriptors (EMFILE, ENFILE) the connection stays queued and accept fails
                // again at once: retried at once, this loop would spin a core and flood the log.
                // Logged once per run of failures; the pause doubles up to a second.
                if (++failures == 1)
                    _log.LogWarning("accept failed: {Error} ({Message}); retrying with a pause of up to {Max} ms, logged again when accepting works", ex.SocketErrorCode, ex.Message, (int)MaxAcceptPause.TotalMilliseconds);
                try { await Task.Delay(AcceptPause(failures), _stop.Token); }
                catch (OperationCanceledException) { return; }
                continue;
            }
            if (failures > 0)
            {
                _log.LogInformation("accepting again after {Failures} failed accepts", failures);
                failures = 0;
            }
            Admit(peer);
        }
    }

    private static readonly TimeSpan MaxAcceptPause = TimeSpan.FromSeconds(1);

    /// <summary>The pause after the <paramref name="failures"/>th accept in a row that failed:
    /// 10 ms, doubling, at most a second.</summary>
    internal static TimeSpan AcceptPause(int failures) =>
        TimeSpan.FromMilliseconds(Math.Min(MaxAcceptPause.TotalMilliseconds, 10 << Math.Min(failures - 1, 10)));

    // Accept-loop thread: a connection over the bounds is told why and closed at once, so it
    // holds no descriptor; refusals are logged within RefusalLog's bound (a flood must not flood the log).
    private void Admit(Socket socket)
    {
        Peer peer;
        try { peer = Credentials(socket); }
        catch (SocketException)
        {
            socket.Dispose();
            return;
        }
        bool granted = _grants.Names(peer.Uid, peer.Groups);
        if ((Descriptors.TooFew((long)socket.SafeHandle.DangerousGetHandle()) ?? _clients.Admit(peer.Uid, granted)) is { } refused)
        {
            (granted ? _refusals : _ungrantedRefusals).Warn("{Peer}: connection refused: {Why}", peer, refused);
            try
            {
                // Never blocks the accept loop: the answer fits the empty socket buffer, or is dropped.
                socket.Blocking = false;
                socket.Send(Encoding.ASCII.GetBytes(HelperMessage.Error(HelperMessage.Busy, refused) + "\n"));
            }
            catch (SocketException) { }
            socket.Dispose();
            return;
        }
        _ = Task.Run(async () =>
        {
            // One client's failure must never stop the others, nor leave its socket open.
            try { await new HelperConnection(socket, peer, _limits, granted ? _refusals : _ungrantedRefusals, _log, Handle, _stop.Token).Serve(); }
            catch (Exception ex)
            {
                _log.LogError(ex, "serving a client failed");
                socket.Dispose();
            }
            finally { _clients.Leave(peer.Uid, granted); }
        });
    }

    internal readonly record struct Peer(int Pid, uint Uid, uint Gid, IReadOnlyCollection<uint> Groups)
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

    private string Handle(Peer peer, ReadOnlySpan<byte> line, Dictionary<IPAddress, Lease> held, RefusalLog.OfConnection refusals)
    {
        if (!HelperMessage.TryParseRequest(line, out var request, out string why))
        {
            refusals.Warn("{Peer}: refused a malformed request: {Why}", peer, why);
            return HelperMessage.Error(HelperMessage.BadRequest, why);
        }
        switch (request.Verb)
        {
            case HelperMessage.Describe:
            {
                // A pool's ranges are no secret; whether this user may take from it is decided per ACQUIRE,
                // so a refusal reaches the app as a SocketException at its socket rather than at start-up.
                if (Refusal(peer, request.Argument, refusals, out var pool, checkGrant: false) is { } refused) return refused;
                return HelperMessage.Ok(pool!.Description.ToJson());
            }
            case HelperMessage.Acquire:
            {
                if (Refusal(peer, request.Argument, refusals, out var pool) is { } refused) return refused;
                int quota = _grants.QuotaFor(peer.Uid, peer.Groups, pool!.Name)!.Value;
                if (!_clients.TryReserve(peer.Uid, quota, out int used))
                {
                    refusals.Warn("{Peer}: refused an address from pool {Pool}: quota of {Quota} reached", peer, pool.Name, quota);
                    return HelperMessage.Error(HelperMessage.OverQuota, $"uid {peer.Uid} already holds {used} addresses, its quota for pool '{pool.Name}' is {quota}");
                }
                Lease? lease = null;
                try
                {
                    if (!pool.TryAcquire($"helper for {peer}", out lease, out var error))
                    {
                        lease = null;
                        return HelperMessage.Error(HelperMessage.Exhausted, error!.Message);
                    }
                    lock (held) held[lease.Address] = lease;
                }
                finally { _clients.Settle(peer.Uid, lease); }
                // The DHCP server may take it back (NAK, expiry); it has left the host then, and
                // stops counting against the quota by itself (HelperClients counts live leases).
                lease.OnLost((lost, why) =>
                {
                    lock (held)
                        if (held.TryGetValue(lost.Address, out var now) && now == lost) held.Remove(lost.Address);
                    _log.LogWarning("{Peer}: lost {Address} from pool {Pool}: {Why}", peer, lost.Address, lost.PoolName, why);
                });
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
                    refusals.Warn("{Peer}: refused to release {Address}, which this connection does not hold", peer, HelperMessage.Truncate(request.Argument));
                    return HelperMessage.Error(HelperMessage.NotHeld, $"this connection holds no address '{HelperMessage.Truncate(request.Argument)}'");
                }
                lease.Release();
                return HelperMessage.Ok(lease.Address.ToString());
            }
        }
    }

    private string? Refusal(Peer peer, string poolName, RefusalLog.OfConnection refusals, out AddressPool? pool, bool checkGrant = true)
    {
        pool = _stack.Pools.FirstOrDefault(p => string.Equals(p.Name, poolName, StringComparison.OrdinalIgnoreCase));
        if (pool is null)
        {
            refusals.Warn("{Peer}: asked for unknown pool {Pool}", peer, HelperMessage.Truncate(poolName));
            return HelperMessage.Error(HelperMessage.UnknownPool, $"the helper serves no pool '{HelperMessage.Truncate(poolName)}'");
        }
        if (checkGrant && _grants.QuotaFor(peer.Uid, peer.Groups, pool.Name) is null)
        {
            refusals.Warn("{Peer}: refused pool {Pool}: no grant", peer, pool.Name);
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
