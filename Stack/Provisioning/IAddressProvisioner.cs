using System.Net;
using SockShim.Stack.Pools;

namespace SockShim.Stack.Provisioning;

/// <summary>
/// Makes a pool address usable on the host before a socket binds it, and undoes that after.
/// The loopback provisioner needs nothing per address; netlink (the address on the NIC),
/// AnyIP (a routed prefix plus IP_FREEBIND) and DHCP come behind the same interface.
/// </summary>
public interface IAddressProvisioner
{
    /// <summary>The name used in configuration (<c>"loopback"</c>).</summary>
    string Name { get; }

    /// <summary>Why this provisioner cannot serve <paramref name="pool"/>, or null when it can.</summary>
    string? CheckPool(PoolDefinition pool);

    /// <summary>Makes <paramref name="address"/> usable; on failure a <see cref="StackError"/> saying why.</summary>
    StackError? Provision(IPAddress address, PoolDefinition pool);

    /// <summary>Why an address of this provisioner cannot reach <paramref name="destination"/>, or null.</summary>
    string? CheckDestination(IPAddress destination, PoolDefinition pool);

    /// <summary>Whether sockets must bind with IP_FREEBIND / IPV6_FREEBIND (AnyIP prefixes).</summary>
    bool FreeBind => false;

    /// <summary>Undoes <see cref="Provision"/>. Called exactly once per successful provision.</summary>
    void Deprovision(IPAddress address, PoolDefinition pool);
}
