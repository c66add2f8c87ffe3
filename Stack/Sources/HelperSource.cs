using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using SockShim.Stack.Addressing;
using SockShim.Stack.Claims;
using SockShim.Stack.Configuration;
using SockShim.Stack.Errors;
using SockShim.Stack.Provisioning;
using SockShim.Stack.Wire;

namespace SockShim.Stack.Sources;

/// <summary>
/// An unprivileged process's side of `sockshim serve`: one connection to the helper, held for
/// the process's life (when the process ends, however it ends, the helper sees the connection
/// close and releases what it held). Addresses are asked for and given back one request at a time.
/// The helper closes a connection that holds nothing and has said nothing for a while (its idle
/// timeout); then, holding nothing to lose, this side connects again and asks once more.
/// </summary>
internal sealed class HelperSource : IAddressSource
{
    private NetworkStream _stream;
    private StreamReader _reader;
    private readonly object _gate = new();
    private readonly string _pool;
    private readonly string _path;

    public SourceKind Kind => SourceKind.Helper;
    public int ReadyCount => 0;

    /// <summary>This process's own record of what it holds; the host-wide table is the helper's.</summary>
    public LeaseTable Table { get; private set; } = null!;
    public PoolDefinition Addresses { get; private set; } = null!;

    private HelperSource(Socket socket, string pool, string path)
    {
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = new StreamReader(_stream, Encoding.ASCII);
        _pool = pool;
        _path = path;
    }

    /// <summary>Connects and asks the helper to describe the pool; a problem with the helper
    /// setting when it cannot be reached or refuses. The description is the helper's table's.</summary>
    public static (HelperSource Source, PoolDescription Described) Open(HelperPoolSpec spec)
    {
        string path = spec.SocketPath;
        string where = spec.Origins.Of(PoolField.Helper);
        var socket = Connect(path, out string? why) ?? throw new ConfigurationException(new SettingProblem(where, path, why!,
            why!.StartsWith("cannot reach", StringComparison.Ordinal) ? "/run/sockshim/helper.sock" : "the socket of root's `sockshim serve`, such as /run/sockshim/helper.sock"));
        var source = new HelperSource(socket, spec.Name, path);
        try
        {
            if (!source.Ask($"{HelperMessage.Describe} {spec.Name}", out string payload, out string code))
                throw new ConfigurationException(new SettingProblem(where, path, $"the helper refused ({code}): {payload}", "a pool the helper grants this user"));
            var described = PoolDescription.FromJson(payload);
            source.Addresses = described?.Definition()
                ?? throw new ConfigurationException(new SettingProblem(where, path, $"the helper's description of pool '{spec.Name}' cannot be used", "a helper of the same SockShim version"));
            source.Table = LeaseTable.OpenPrivate(source.Addresses.Count);
            return (source, described!);
        }
        catch
        {
            source.Dispose();
            throw;
        }
    }

    /// <summary>How long a connect waits while the helper's queue of connections is full, and an
    /// answer may take: a helper that stops accepting or answering (or anything else serving on
    /// its socket) must not hang the app's socket calls.</summary>
    private static readonly TimeSpan ConnectWithin = TimeSpan.FromSeconds(5), AnswerWithin = TimeSpan.FromSeconds(30);

    /// <summary>A connection to root's helper at <paramref name="path"/>, or null and why not.</summary>
    private static Socket? Connect(string path, out string? why)
    {
        // A connect to a Unix socket whose queue is full blocks until the server accepts; made
        // without blocking it fails at once (EAGAIN), and is tried again, a few times, briefly.
        var waited = System.Diagnostics.Stopwatch.StartNew();
        Socket socket;
        for (int pause = 1; ; pause = Math.Min(pause * 2, 100))
        {
            socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { Blocking = false };
            try
            {
                socket.Connect(new UnixDomainSocketEndPoint(path));
                break;
            }
            catch (SocketException ex)
            {
                socket.Dispose();
                if (ex.SocketErrorCode == SocketError.WouldBlock && waited.Elapsed < ConnectWithin)
                {
                    Thread.Sleep(pause);
                    continue;
                }
                why = ex.SocketErrorCode == SocketError.WouldBlock
                    ? $"`sockshim serve` there accepted no connection for {ConnectWithin.TotalSeconds:0} s (its queue is full); try again, or look at the helper's log"
                    : $"cannot reach `sockshim serve` there ({ex.SocketErrorCode}); start it (as root) with the pool configured";
                return null;
            }
        }
        socket.Blocking = true;
        socket.ReceiveTimeout = socket.SendTimeout = (int)AnswerWithin.TotalMilliseconds;
        if (PeerUid(socket) is not 0 and var uid)
        {
            socket.Dispose();
            why = $"the process serving there runs as uid {uid}, not root: only root's `sockshim serve` is trusted to hand out addresses";
            return null;
        }
        why = null;
        return socket;
    }

    // struct ucred { pid_t pid; uid_t uid; gid_t gid; }: who serves on the other end.
    private static uint PeerUid(Socket socket)
    {
        Span<byte> cred = stackalloc byte[12];
        socket.GetRawSocketOption(Tmds.Linux.LibC.SOL_SOCKET, Tmds.Linux.LibC.SO_PEERCRED, cred);
        return BitConverter.ToUInt32(cred[4..]);
    }

    private bool Ask(string request, out string payload, out string code)
    {
        lock (_gate)
        {
            if (Exchange(request) is { } line) return Parse(line, out payload, out code);
            // Closed with nothing held: the helper's idle timeout (or a restart), nothing lost.
            // Holding addresses, the connection was what kept them: that is not hidden.
            if (Table is null || !Table.HeldSlots().Any())
            {
                if (Connect(_path, out string? why) is not { } socket)
                {
                    payload = $"the helper closed the connection, and connecting again failed: {why}";
                    code = "connection";
                    return false;
                }
                _reader.Dispose(); // and its stream
                _stream = new NetworkStream(socket, ownsSocket: true);
                _reader = new StreamReader(_stream, Encoding.ASCII);
                if (Exchange(request) is { } again) return Parse(again, out payload, out code);
            }
            payload = "the helper closed the connection";
            code = "connection";
            return false;
        }
    }

    // One request and its answer line; null when the connection is gone. A helper that refused
    // the connection (busy) said why before closing: that line is read even if the write failed.
    private string? Exchange(string request)
    {
        try { _stream.Write(Encoding.ASCII.GetBytes(request + "\n")); }
        catch (IOException) { }
        try { return _reader.ReadLine(); }
        catch (IOException) { return null; }
    }

    private static bool Parse(string line, out string payload, out string code)
    {
        if (HelperMessage.TryParseAnswer(line, out bool ok, out payload, out code)) return ok;
        payload = $"an answer not of the protocol: '{HelperMessage.Truncate(line)}'";
        code = "connection";
        return false;
    }

    public bool TryTake(out SourcedAddress taken, out StackError? error)
    {
        taken = null!;
        if (!Ask($"{HelperMessage.Acquire} {_pool}", out string payload, out string code) || !IPAddress.TryParse(payload, out var given))
        {
            error = new StackError(code switch
            {
                HelperMessage.NotGranted => StackErrorCode.NotGranted,
                HelperMessage.OverQuota or HelperMessage.Exhausted => StackErrorCode.PoolExhausted,
                _ => StackErrorCode.ProvisionFailed,
            }, $"pool '{_pool}' (from the helper at {_path}): {payload}");
            return false;
        }
        int slot = Addresses.IndexOf(given);
        if (slot < 0 || !Table.TryClaimSlot(slot, ProcessIdentity.Current))
        {
            Ask($"{HelperMessage.Release} {given}", out _, out _);
            error = new StackError(StackErrorCode.ProvisionFailed, $"pool '{_pool}': the helper gave {given}, which is outside the pool or already held here");
            return false;
        }
        error = null;
        taken = new SourcedAddress(slot, given);
        return true;
    }

    /// <summary>Out of this process's record, then back to the helper, which takes it off the host.</summary>
    public void Return(SourcedAddress taken)
    {
        Table.Release(taken.Slot, ProcessIdentity.Current);
        Ask($"{HelperMessage.Release} {taken.Address}", out _, out _);
    }

    // The helper reclaims for dead clients itself: it sees their connections close.
    public int ReclaimDead() => 0;

    public void ReleaseReady() { }

    public void Dispose()
    {
        _stream.Dispose();
        Table?.Dispose();
    }
}

/// <summary>The app-side provisioner of a helper's pool: the helper has already put the address
/// on the host, so there is nothing to do here, and a NIC address reaches any destination.</summary>
internal sealed class HelperProvisioned : IAddressProvisioner
{
    public ProvisionerKind Kind => ProvisionerKind.Netlink;
    public string Name => "helper";
}
