using System.Net.Sockets;
using SockShim.Stack.Addressing;
using SockShim.Stack.Claims;
using SockShim.Stack.Configuration;
using SockShim.Stack.Errors;
using SockShim.Stack.Policy;
using SockShim.Stack.Pools;
using SockShim.Stack.Provisioning;
using SockShim.Stack.Sources;

namespace SockShim.Stack;

/// <summary>
/// The one place that decides which address a socket gets: the configured pools, which pool
/// serves which family or name, and when addresses are taken. It is also the one place that
/// opens what the pools need (lease tables, DHCP clients, the helper's connection) and changes
/// the host for them (a missing AnyIP route, when allowed). Shim, the Berkeley API and the
/// Interceptor ask here, through the binder, and do nothing but bind what it hands out.
/// </summary>
public sealed class AddressStack : IDisposable
{
    private readonly List<AddressPool> _pools = new();
    // The pools once all are open, as an array: FirstOf runs at every connection.
    private AddressPool[] _opened = [];
    private int _disposed;

    public StackSpec Spec { get; }
    public AllocationTime Allocation => Spec.Allocation;
    public IReadOnlyList<AddressPool> Pools => _pools;

    /// <summary>Which sockets get addresses, built from the spec.</summary>
    public SocketPolicy Policy { get; private set; } = null!;

    private AddressStack(StackSpec spec) => Spec = spec;

    /// <summary>Builds the stack from settings made in code.</summary>
    public static AddressStack Create(StackSettings settings, TimeProvider? time = null) => Create(StackSpecs.From(settings), time);

    /// <summary>Checks the host can serve the spec, then opens (or creates) each pool's
    /// host-wide lease table and source.</summary>
    public static AddressStack Create(StackSpec spec, TimeProvider? time = null)
    {
        time ??= TimeProvider.System;
        var problems = HostChecks.Run(spec);
        if (problems.Count > 0) throw new ConfigurationException(problems);
        var stack = new AddressStack(spec);
        try
        {
            // A helper's pools keep their tables with the helper: the state directory is for local ones.
            // Its tables are opened through the path the check resolved.
            string stateDirectory = spec.Pools.Any(p => p is LocalPoolSpec) ? HostFiles.EnsureDirectory(spec.StateDirectory) : spec.StateDirectory;
            foreach (var pool in spec.Pools) stack._pools.Add(Open(pool, stateDirectory, time));
            stack._opened = [.. stack._pools];
        }
        catch
        {
            stack.Dispose();
            throw;
        }
        stack.Policy = new SocketPolicy(spec.Mode, stack.Destinations(), spec.Allocation, spec.WildcardBind);
        // Process exit releases what sockets still hold; a SIGKILL is covered by the table's
        // owner tokens instead.
        AppDomain.CurrentDomain.ProcessExit += stack.OnProcessExit;
        return stack;
    }

    private static AddressPool Open(PoolSpec spec, string stateDirectory, TimeProvider time)
    {
        if (spec is HelperPoolSpec helper)
        {
            var (remote, described) = HelperSource.Open(helper);
            // The helper provisions; this side only needs to know how sockets bind (FreeBind).
            IAddressProvisioner bindsAs = described.Provisioner == ProvisionerKind.AnyIp ? new AnyIpProvisioner() : new HelperProvisioned();
            return new AddressPool(remote.Addresses, bindsAs, remote, described.Dscp, described, time);
        }
        var local = (LocalPoolSpec)spec;
        if (local.Provisioner is AnyIpProvisionerSpec { AddRoute: true } && AnyIpProvisioner.AddMissingRoutes(local.Addresses) is { } routeProblem)
            throw new ConfigurationException(new SettingProblem(local.Origins.Of(PoolField.AnyIpAddRoute), "true", routeProblem, "false, with the route added by hand"));
        var provisioner = IAddressProvisioner.Create(local.Provisioner);
        string path = StateDirectory.TablePath(stateDirectory, local.Name, local.Addresses.Fingerprint);
        // The description first: gc and status refuse a table whose description they cannot read
        // (they could not tell its addresses), so none may appear without one, even for a moment.
        var description = PoolDescription.Of(local);
        StateDirectory.WriteDescription(path, description.ToJson());
        var table = LeaseTable.Open(path, local.Addresses.Count);
        var host = new HostAddresses(local.Name, local.Addresses, provisioner, table, ProcessIdentity.Current);
        IAddressSource source;
        try { source = local is DhcpPoolSpec dhcp ? DhcpSource.Open(dhcp, host, provisioner.FreeBind, time) : new StaticSource(host, local.Prefetch); }
        catch
        {
            table.Dispose();
            throw;
        }
        var pool = new AddressPool(local.Addresses, provisioner, source, local.Dscp, description, time);
        // Whatever a crashed process left is free again before this one starts taking addresses.
        pool.ReclaimDead();
        (source as DhcpSource)?.Start();
        return pool;
    }

    private DestinationFilter Destinations()
    {
        if (Spec.Destinations.Count > 0) return new(Spec.Destinations);
        // Unset: what every pool can reach. Loopback addresses reach only loopback destinations.
        return _pools.Count > 0 && _pools.All(p => p.Provisioner is LoopbackProvisioner)
            ? new([new(AddressRange.Loopback, 0, 65535), new(new AddressRange(AddressFamily.InterNetworkV6, AddressNumber.One, AddressNumber.One), 0, 65535)])
            : DestinationFilter.Any;
    }

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
                error = new StackError(StackErrorCode.NoPoolForFamily, $"pool '{name}' is {AddressMath.FamilyName(named.Definition.Family)}, and the socket is {AddressMath.FamilyName(family)}");
            return error is null ? named : null;
        }
        var pool = FirstOf(family);
        if (pool is null)
            error = new StackError(StackErrorCode.NoPoolForFamily,
                $"no configured pool serves {AddressMath.FamilyName(family)} sockets (pools: {string.Join("; ", _pools.Select(p => p.Definition.ToString()))}); add one with SOCKSHIM_POOL or a pool in the configuration file");
        return pool;
    }

    /// <summary>Whether any pool serves sockets of <paramref name="family"/>.</summary>
    public bool HasPool(AddressFamily family) => FirstOf(family) is not null;

    // Asked at every connection: a loop over an array, where a lambda capturing the family would
    // be a closure and a delegate allocated per call, and a List's enumerator four calls into
    // shared generic code that a fresh process recompiles as it gets hot.
    private AddressPool? FirstOf(AddressFamily family)
    {
        foreach (var pool in _opened)
            if (pool.Definition.Family == family) return pool;
        return null;
    }

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
