using BenchmarkDotNet.Attributes;
using SockShim.Stack;
using SockShim.Stack.Addressing;
using SockShim.Stack.Claims;
using SockShim.Stack.Configuration;
using SockShim.Stack.Errors;
using SockShim.Stack.Policy;
using SockShim.Stack.Pools;
using SockShim.Stack.Wire;

namespace SockShim.Benchmarks;

/// <summary>The host-wide table alone: one claim and one release of a slot, per strategy.</summary>
[MemoryDiagnoser]
public class AllocatorBenchmarks
{
    private const int Batch = 1000;
    private string _dir = "";
    private LeaseTable _table = null!;
    private readonly long _owner = (long)Environment.ProcessId << 32 | 1; // any non-zero token: nothing here reclaims

    [Params(AllocationStrategy.LeastRecentlyReleased, AllocationStrategy.Sequential)]
    public AllocationStrategy Strategy { get; set; }

    [GlobalSetup]
    public void Open()
    {
        _dir = Directory.CreateTempSubdirectory("sockshim-bdn-").FullName;
        _table = LeaseTable.Open(Path.Combine(_dir, "bench.leases"), 65534);
    }

    [GlobalCleanup]
    public void Close()
    {
        _table.Dispose();
        Directory.Delete(_dir, true);
    }

    [Benchmark(OperationsPerInvoke = Batch, Description = "claim+release")]
    public void ClaimRelease()
    {
        for (int i = 0; i < Batch; i++)
        {
            int slot = _table.Claim(Strategy, _owner);
            _table.Release(slot, _owner);
        }
    }
}

/// <summary>A socket's whole take on the loopback pool: table, provisioner, metrics, lease object.</summary>
[MemoryDiagnoser]
public class PoolBenchmarks
{
    private string _dir = "";
    private AddressStack _stack = null!;
    private AddressPool _pool = null!;

    [GlobalSetup]
    public void Open()
    {
        _dir = Directory.CreateTempSubdirectory("sockshim-bdn-").FullName;
        _stack = AddressStack.Create(new StackSettings { StateDirectory = _dir, Pools = [StackSettings.DefaultPool] });
        _pool = _stack.Pools[0];
    }

    [GlobalCleanup]
    public void Close()
    {
        _stack.Dispose();
        Directory.Delete(_dir, true);
    }

    [Benchmark(Description = "loopback pool acquire+release")]
    public void AcquireRelease()
    {
        if (!_pool.TryAcquire("bench", out var lease, out var error)) throw new InvalidOperationException(error!.Message);
        lease.Release();
    }
}

/// <summary>The DHCP wire format: what every packet on port 68 costs to read.</summary>
[MemoryDiagnoser]
public class DhcpWireBenchmarks
{
    private readonly byte[] _ack = new byte[DhcpMessage.MaxEmitLength];
    private readonly byte[] _buffer = new byte[DhcpMessage.MaxEmitLength];
    private int _length;
    private DhcpMessage _message = null!;

    [GlobalSetup]
    public void Build()
    {
        _message = new DhcpMessage
        {
            Op = 2, MessageType = DhcpMessageType.Ack, TransactionId = 42, YourAddress = System.Net.IPAddress.Parse("198.51.100.23"),
            HardwareAddress = [2, 0, 0x5e, 1, 2, 3], ServerId = System.Net.IPAddress.Parse("198.51.100.254"), LeaseSeconds = 3600,
            ClientId = SockShim.Stack.Dhcp.ClientIdentifier.For(7, [2, 0, 0x5e, 1, 2, 3]),
        };
        _length = _message.Emit(_ack);
    }

    [Benchmark(Description = "DHCP parse")]
    public bool Parse() => DhcpMessage.TryParse(_ack.AsSpan(0, _length), out _, out _);

    [Benchmark(Description = "DHCP emit")]
    public int Emit() => _message.Emit(_buffer);
}
