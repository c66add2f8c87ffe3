using System.Net;
using SockShim.Stack.Configuration;
using SockShim.Stack.Errors;

namespace SockShim.Stack.Provisioning;

/// <summary>
/// Makes a pool address usable on the host before a socket binds it, and undoes that after.
/// The loopback provisioner needs nothing per address; netlink (the address on the NIC) and
/// AnyIP (a routed prefix plus IP_FREEBIND) come behind the same interface. Whether the host
/// can serve a pool at all is <see cref="HostChecks"/>, checked before any is made. Each member
/// does nothing unless a provisioner has something to do.
/// </summary>
internal interface IAddressProvisioner
{
    ProvisionerKind Kind { get; }

    /// <summary>The name used in configuration and status (<c>"loopback"</c>).</summary>
    string Name => Kind switch { ProvisionerKind.Netlink => "netlink", ProvisionerKind.AnyIp => "anyip", _ => "loopback" };

    /// <summary>Makes <paramref name="address"/> usable; on failure a <see cref="StackError"/> saying why.
    /// With a <paramref name="lifetime"/> (a DHCP lease's remaining time) a provisioner that puts
    /// the address on an interface gives it that lifetime, so the host drops it when the lease
    /// ends even if no process is left to; without one it stays until <see cref="Deprovision"/>.</summary>
    StackError? Provision(IPAddress address, string pool, TimeSpan? lifetime = null) => null;

    /// <summary>Sets the lifetime of an address provisioned with one again (a renewed lease).
    /// Only for an address still held: it must not bring back one already deprovisioned.
    /// Nothing to do where addresses carry no lifetime (loopback, AnyIP).</summary>
    void Refresh(IPAddress address, TimeSpan lifetime) { }

    /// <summary>Why an address of this provisioner cannot reach <paramref name="destination"/>, or null.</summary>
    string? CheckDestination(IPAddress destination, string pool) => null;

    /// <summary>Whether sockets must bind with IP_FREEBIND / IPV6_FREEBIND (AnyIP prefixes).</summary>
    bool FreeBind => false;

    /// <summary>Undoes <see cref="Provision"/>. Called exactly once per successful provision.</summary>
    void Deprovision(IPAddress address) { }

    /// <summary>Undoes what a holder that is gone may have provisioned: it may have died before
    /// provisioning, and the address may be someone else's now, so only what carries SockShim's
    /// mark is undone.</summary>
    void DeprovisionLeftover(IPAddress address) => Deprovision(address);

    /// <summary>The provisioner a pool's spec names. Making one does no I/O.</summary>
    static IAddressProvisioner Create(ProvisionerSpec spec) => spec switch
    {
        NetlinkProvisionerSpec n => new NetlinkProvisioner(n.Interface, n.Announce ? new Announcer(n.Interface) : null, n.ConflictProbe > TimeSpan.Zero ? new ArpProbe(n.Interface, n.ConflictProbe) : null),
        AnyIpProvisionerSpec => new AnyIpProvisioner(),
        _ => new LoopbackProvisioner(),
    };
}
