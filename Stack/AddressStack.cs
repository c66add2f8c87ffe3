using System.Net.Sockets;
using SockShim.Stack.Configuration;
using SockShim.Stack.Leases;
using SockShim.Stack.Pools;
using SockShim.Stack.Policy;
using SockShim.Stack.Provisioning;

namespace SockShim.Stack;

/// <summary>
/// The one place that decides which address a socket gets: the configured pools, which pool
/// serves which family or name, and when addresses are taken. Shim, the Berkeley API and the
/// Interceptor all ask here and do nothing but bind what it hands out.
/// </summary>
public sealed class AddressStack : IDisposable
{
    private readonly List<AddressPool> _pools = new();
    private int _disposed;

    public StackSettings Settings { get; }
    public AllocationTime Allocation => Settings.Allocation;
    public IReadOnlyList<AddressPool> Pools => _pools;

    /// <summary>Which sockets get addresses, built from the settings.</summary>
    public SocketPolicy Policy { get; private set; } = null!;

    private AddressStack(StackSettings settings) => Settings = settings;

    private DestinationFilter BuildDestinations()
    {
        if (Settings.Destinations.Count > 0)
            return new(Settings.Destinations.Select(d => DestinationFilter.TryParseRule(d, out var r, out var e) ? r : throw new ConfigurationException(new SettingProblem("destinations", d, e, DestinationFilter.Example))).ToList());
        // Unset: what every pool can reach. Loopback addresses reach only loopback destinations.
        if (_pools.Count > 0 && _pools.All(p => p.Provisioner is LoopbackProvisioner))
        {
            DestinationFilter.TryParseRule("127.0.0.0/8", out var v4, out _);
            DestinationFilter.TryParseRule("::1", out var v6, out _);
            return new([v4, v6]);
        }
        return DestinationFilter.Any;
    }

    /// <summary>Builds the stack and opens (or creates) each pool's host-wide lease table.</summary>
    public static AddressStack Create(StackSettings settings, TimeProvider? time = null)
    {
        time ??= TimeProvider.System;
        var problems = new List<SettingProblem>();
        var built = settings.Pools
            .Select(p => p.IsHelper ? null : PoolBuilder.Build(p, (field, i) => $"pool '{p.Name}' {field.ToLowerInvariant()}" + (i is { } n ? $" item {n + 1}" : ""), problems))
            .ToList();
        if (problems.Count > 0) throw new ConfigurationException(problems);

        var stack = new AddressStack(settings);
        try
        {
            StateDirectory.Ensure(settings.StateDirectory);
            for (int i = 0; i < built.Count; i++)
            {
                if (settings.Pools[i].IsHelper)
                {
                    var (source, remote, described) = Helper.HelperSource.Open(settings.Pools[i]);
                    // The helper provisions; this side only needs to know how sockets bind (FreeBind).
                    IAddressProvisioner local = described.Provisioner.Trim().ToLowerInvariant() == "anyip" ? new AnyIpProvisioner(false) : new Helper.HelperProvisioned();
                    stack._pools.Add(new AddressPool(remote, local, LeaseTable.OpenPrivate(settings.StateDirectory, remote.Count), time, source) { Dscp = DscpOf(described) });
                    continue;
                }
                var (definition, provisioner) = built[i]!.Value;
                string path = StateDirectory.TablePath(settings.StateDirectory, definition);
                var table = LeaseTable.Open(path, definition.Count);
                StateDirectory.WriteDescription(path, settings.Pools[i]);
                var dhcp = settings.Pools[i].IsDhcp ? Dhcp.DhcpSource.Opener(settings.Pools[i], provisioner.FreeBind, time) : null;
                stack._pools.Add(new AddressPool(definition, provisioner, table, time, dhcp, settings.Pools[i].Prefetch) { Dscp = DscpOf(settings.Pools[i]) });
            }
        }
        catch
        {
            stack.Dispose();
            throw;
        }
        stack.Policy = new SocketPolicy(settings.Mode, stack.BuildDestinations(), settings.Allocation);
        // Process exit releases what sockets still hold; a SIGKILL is covered by the table's
        // owner tokens instead.
        AppDomain.CurrentDomain.ProcessExit += stack.OnProcessExit;
        return stack;
    }

    private static int? DscpOf(PoolSettings pool) => pool.Dscp is { } d && Stack.Policy.Dscp.TryParse(d, out int cp) ? cp : null;

    /// <summary>Loads configuration from the environment (and SOCKSHIM_CONFIG) and builds the stack.</summary>
    public static AddressStack FromEnvironment() => Create(SettingsLoader.Load());

    /// <summary>The pool for a socket: by name when the caller names one, else the first pool of the family.</summary>
    public AddressPool? FindPool(AddressFamily family, string? name, out StackError? error)
    {
        error = null;
        if (name is not null)
        {
            var named = _pools.FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase));
            if (named is null)
                error = new StackError(StackErrorCode.UnknownPool, $"no pool is named '{name}' (configured: {string.Join(", ", _pools.Select(p => p.Name))})");
            else if (named.Definition.Family != family)
                error = new StackError(StackErrorCode.NoPoolForFamily, $"pool '{name}' is {Addressing.AddressMath.FamilyName(named.Definition.Family)}, and the socket is {Addressing.AddressMath.FamilyName(family)}");
            return error is null ? named : null;
        }
        var pool = _pools.FirstOrDefault(p => p.Definition.Family == family);
        if (pool is null)
            error = new StackError(StackErrorCode.NoPoolForFamily,
                $"no configured pool serves {Addressing.AddressMath.FamilyName(family)} sockets (pools: {string.Join("; ", _pools.Select(p => p.Definition.ToString()))}); add one with SOCKSHIM_POOL or a pool in the configuration file");
        return pool;
    }

    /// <summary>Whether any pool serves sockets of <paramref name="family"/>.</summary>
    public bool HasPool(AddressFamily family) => _pools.Exists(p => p.Definition.Family == family);

    /// <summary>Acquires a lease for a new socket of <paramref name="family"/>.</summary>
    public bool TryAcquire(AddressFamily family, string? poolName, string reason, out Lease lease, out StackError? error)
    {
        lease = null!;
        var pool = FindPool(family, poolName, out error);
        return pool is not null && pool.TryAcquire(reason, out lease, out error);
    }

    private void OnProcessExit(object? sender, EventArgs e) => ReleaseAll();

    public int ReleaseAll() => _pools.Sum(p => p.ReleaseAll());

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
        foreach (var pool in _pools) pool.Dispose();
    }
}
