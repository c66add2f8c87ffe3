using System.Net.Sockets;
using SockShim.Stack.Policy;

namespace SockShim.Stack.Configuration;

/// <summary>The fields of a pool, so a problem found later (a host check) names the setting
/// that holds the value without guessing from its message.</summary>
public enum PoolField
{
    Name, Ranges, Exclude, Family, Strategy, Provisioner, Interface, Announce, AnyIpAddRoute, MaxAddresses,
    Source, Prefetch, LeaseSeconds, DhcpTimeout, DhcpProbe, Helper, Dscp,
    // Added later: at the end, so the values above keep their numbers.
    DhcpRate, ConflictProbe,
}

/// <summary>How a pool's addresses become usable on the host.</summary>
public enum ProvisionerKind
{
    /// <summary>127.0.0.0/8: every address is already local; nothing per address.</summary>
    Loopback,
    /// <summary>Each address added to an interface as a /32 or /128 over NETLINK_ROUTE.</summary>
    Netlink,
    /// <summary>A prefix routed to the host as local; sockets bind with IP_FREEBIND.</summary>
    AnyIp,
}

/// <summary>Where a pool's addresses come from.</summary>
public enum SourceKind
{
    /// <summary>The pool's own ranges.</summary>
    Static,
    /// <summary>One lease per socket from the DHCP server on the pool's interface.</summary>
    Dhcp,
    /// <summary>`sockshim serve`, which owns the pool and provisions for unprivileged apps.</summary>
    Helper,
}

/// <summary>A provisioner as configured: its kind and only the settings that kind has.</summary>
public abstract record ProvisionerSpec(ProvisionerKind Kind)
{
    public static ProvisionerSpec Loopback { get; } = new LoopbackProvisionerSpec();
}

public sealed record LoopbackProvisionerSpec() : ProvisionerSpec(ProvisionerKind.Loopback);

/// <summary>Addresses on <paramref name="Interface"/>; <paramref name="Announce"/>: a gratuitous
/// ARP / unsolicited neighbour advertisement for each; <paramref name="ConflictProbe"/>: how long
/// an RFC 5227 ARP probe waits for another station claiming an address before it is added
/// (zero: no probe).</summary>
public sealed record NetlinkProvisionerSpec(string Interface, bool Announce, TimeSpan ConflictProbe = default) : ProvisionerSpec(ProvisionerKind.Netlink);

/// <summary><paramref name="AddRoute"/>: SockShim may add the prefix's missing local route.</summary>
public sealed record AnyIpProvisionerSpec(bool AddRoute) : ProvisionerSpec(ProvisionerKind.AnyIp);

/// <summary>A DHCP pool's timing, as configured; <paramref name="Rate"/>: acquisition packets a second on its interface.</summary>
public sealed record DhcpSpec(TimeSpan AcquireTimeout, uint? RequestedLeaseSeconds, TimeSpan ProbeWait, double Rate);

/// <summary>
/// One pool as configuration yields it: immutable, every value parsed and checked, no I/O done.
/// The kind of pool is the type: <see cref="StaticPoolSpec"/>, <see cref="DhcpPoolSpec"/> or
/// <see cref="HelperPoolSpec"/>.
/// </summary>
public abstract record PoolSpec(string Name, SettingOrigins Origins)
{
    public SourceKind Source => this switch { DhcpPoolSpec => SourceKind.Dhcp, HelperPoolSpec => SourceKind.Helper, _ => SourceKind.Static };
}

/// <summary>A pool whose addresses this process claims and provisions itself.</summary>
public abstract record LocalPoolSpec(string Name, SettingOrigins Origins, PoolDefinition Addresses, ProvisionerSpec Provisioner, int? Dscp, int Prefetch)
    : PoolSpec(Name, Origins)
{
    public AddressFamily Family => Addresses.Family;
}

public sealed record StaticPoolSpec(string Name, SettingOrigins Origins, PoolDefinition Addresses, ProvisionerSpec Provisioner, int? Dscp, int Prefetch)
    : LocalPoolSpec(Name, Origins, Addresses, Provisioner, Dscp, Prefetch);

/// <summary>A DHCP pool: its ranges are the server's subnet, which every lease must fall in.</summary>
public sealed record DhcpPoolSpec(string Name, SettingOrigins Origins, PoolDefinition Addresses, ProvisionerSpec Provisioner, int? Dscp, int Prefetch, string Interface, DhcpSpec Dhcp)
    : LocalPoolSpec(Name, Origins, Addresses, Provisioner, Dscp, Prefetch);

/// <summary>A pool described by `sockshim serve` at <paramref name="SocketPath"/>.</summary>
public sealed record HelperPoolSpec(string Name, SettingOrigins Origins, string SocketPath) : PoolSpec(Name, Origins);

/// <summary>The whole configuration, typed.</summary>
public sealed record StackSpec(IReadOnlyList<PoolSpec> Pools, AllocationTime Allocation, string StateDirectory, InterceptMode Mode,
    IReadOnlyList<DestinationFilter.Rule> Destinations, WildcardBind WildcardBind);

/// <summary>Where each field of a pool came from, in the user's words (a file key, a variable,
/// an option, the built-in default), for messages about problems found after parsing.</summary>
public sealed class SettingOrigins(Func<PoolField, int?, string> where)
{
    public string Of(PoolField field, int? item = null) => where(field, item);

    /// <summary>For pools configured in code: "pool 'voice' interface".</summary>
    public static SettingOrigins InCode(string pool) =>
        new((field, item) => $"pool '{pool}' {field.ToString().ToLowerInvariant()}" + (item is { } n ? $" item {n + 1}" : ""));
}
