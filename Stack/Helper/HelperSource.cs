using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using SockShim.Stack.Addressing;
using SockShim.Stack.Configuration;
using SockShim.Stack.Pools;
using SockShim.Stack.Wire;

namespace SockShim.Stack.Helper;

/// <summary>
/// An unprivileged process's side of `sockshim serve`: one connection to the helper, held for
/// the process's life (when the process ends, however it ends, the helper sees the connection
/// close and releases what it held). Addresses are asked for and given back one request at a time.
/// </summary>
internal sealed class HelperSource : IDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly StreamReader _reader;
    private readonly object _gate = new();
    private readonly string _pool;
    private readonly string _path;

    private HelperSource(Socket socket, string pool, string path)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = new StreamReader(_stream, Encoding.ASCII);
        _pool = pool;
        _path = path;
    }

    /// <summary>Connects and asks the helper to describe the pool; a problem with the helper
    /// setting when it cannot be reached or refuses.</summary>
    public static (HelperSource Source, PoolDefinition Definition, PoolSettings Described) Open(PoolSettings settings)
    {
        string path = settings.Helper!;
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try { socket.Connect(new UnixDomainSocketEndPoint(path)); }
        catch (SocketException ex)
        {
            socket.Dispose();
            throw new ConfigurationException(new SettingProblem($"pool '{settings.Name}' helper", path,
                $"cannot reach `sockshim serve` there ({ex.SocketErrorCode}); start it (as root) with the pool configured", "/run/sockshim/helper.sock"));
        }
        var source = new HelperSource(socket, settings.Name, path);
        if (!source.Ask($"{HelperMessage.Describe} {settings.Name}", out string payload, out string code))
        {
            source.Dispose();
            throw new ConfigurationException(new SettingProblem($"pool '{settings.Name}' helper", path, $"the helper refused ({code}): {payload}", "a pool the helper grants this user"));
        }
        var described = JsonSerializer.Deserialize<PoolSettings>(payload)!;
        var ranges = described.Ranges.Select(r => AddressRange.TryParse(r, out var x, out _) ? x : throw new InvalidDataException($"the helper described pool '{settings.Name}' with a bad range '{r}'")).ToList();
        var exclude = described.Exclude.Select(r => AddressRange.TryParse(r, out var x, out _) ? x : throw new InvalidDataException($"the helper described pool '{settings.Name}' with a bad exclusion '{r}'")).ToList();
        return (source, new PoolDefinition(described.Name, ranges, exclude, described.Strategy, described.MaxAddresses), described);
    }

    private bool Ask(string request, out string payload, out string code)
    {
        lock (_gate)
        {
            try
            {
                _stream.Write(Encoding.ASCII.GetBytes(request + "\n"));
                string? line = _reader.ReadLine();
                if (line is not null && HelperMessage.TryParseAnswer(line, out bool ok, out payload, out code)) return ok;
                payload = line is null ? "the helper closed the connection" : $"an answer not of the protocol: '{HelperMessage.Truncate(line)}'";
            }
            catch (IOException ex) { payload = $"the connection to the helper failed: {ex.Message}"; }
            code = "connection";
            return false;
        }
    }

    public bool TryTake(out IPAddress address, out StackError? error)
    {
        address = IPAddress.None;
        if (Ask($"{HelperMessage.Acquire} {_pool}", out string payload, out string code) && IPAddress.TryParse(payload, out var given))
        {
            address = given;
            error = null;
            return true;
        }
        error = new StackError(code switch
        {
            HelperMessage.NotGranted => StackErrorCode.NotGranted,
            HelperMessage.OverQuota or HelperMessage.Exhausted => StackErrorCode.PoolExhausted,
            _ => StackErrorCode.ProvisionFailed,
        }, $"pool '{_pool}' (from the helper at {_path}): {payload}");
        return false;
    }

    public void Returned(IPAddress address) => Ask($"{HelperMessage.Release} {address}", out _, out _);

    public void Dispose() => _stream.Dispose();
}

/// <summary>The app-side provisioner of a helper's pool: the helper has already put the address
/// on the host, so there is nothing to do here, and a NIC address reaches any destination.</summary>
internal sealed class HelperProvisioned : Provisioning.IAddressProvisioner
{
    public string Name => "helper";
    public string? CheckPool(PoolDefinition pool) => null;
    public StackError? Provision(IPAddress address, PoolDefinition pool) => null;
    public string? CheckDestination(IPAddress destination, PoolDefinition pool) => null;
    public void Deprovision(IPAddress address, PoolDefinition pool) { }
}
