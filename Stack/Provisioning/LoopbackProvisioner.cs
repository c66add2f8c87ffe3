using System.Net;
using System.Net.Sockets;
using SockShim.Stack.Addressing;
using SockShim.Stack.Pools;

namespace SockShim.Stack.Provisioning;

/// <summary>The embedded default: addresses of 127.0.0.0/8. The kernel's
/// <c>local 127.0.0.0/8 dev lo</c> route already makes every one of them bindable, so there is
/// nothing to add or remove and no privilege is needed. IPv6 has no such range (only ::1).</summary>
public sealed class LoopbackProvisioner : IAddressProvisioner
{
    public static readonly AddressRange LoopbackRange = new(AddressFamily.InterNetwork, AddressMath.ToNumber(IPAddress.Parse("127.0.0.0")), AddressMath.ToNumber(IPAddress.Parse("127.255.255.255")));

    public string Name => "loopback";

    public string? CheckPool(PoolDefinition pool)
    {
        foreach (var range in pool.Ranges)
        {
            if (!range.IsWithin(LoopbackRange))
                return $"the loopback provisioner serves only addresses inside 127.0.0.0/8, and {range} is outside it " +
                       "(IPv6 has no loopback range beyond ::1); use a range such as 127.100.0.0/16, or a provisioner that puts addresses on a real interface";
        }
        return null;
    }

    public StackError? Provision(IPAddress address, PoolDefinition pool) => null;

    // The kernel refuses (EINVAL) to route from a 127.x source to any other host; say why instead.
    public string? CheckDestination(IPAddress destination, PoolDefinition pool) =>
        IPAddress.IsLoopback(destination.IsIPv4MappedToIPv6 ? destination.MapToIPv4() : destination)
            ? null
            : $"pool '{pool.Name}' holds loopback addresses, which reach only loopback destinations, and {destination} is not one; use a pool on a real interface for other destinations";

    public void Deprovision(IPAddress address, PoolDefinition pool) { }
}
