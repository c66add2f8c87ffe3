using System.Net;
using SockShim.Stack.Configuration;

namespace SockShim.Stack.Provisioning;

/// <summary>The embedded default: addresses of 127.0.0.0/8. The kernel's
/// <c>local 127.0.0.0/8 dev lo</c> route already makes every one of them bindable, so there is
/// nothing to add or remove and no privilege is needed. IPv6 has no such range (only ::1).</summary>
internal sealed class LoopbackProvisioner : IAddressProvisioner
{
    public ProvisionerKind Kind => ProvisionerKind.Loopback;

    // The kernel refuses (EINVAL) to route from a 127.x source to any other host; say why instead.
    public string? CheckDestination(IPAddress destination, string pool) =>
        IPAddress.IsLoopback(destination.IsIPv4MappedToIPv6 ? destination.MapToIPv4() : destination)
            ? null
            : $"pool '{pool}' holds loopback addresses, which reach only loopback destinations, and {destination} is not one; use a pool on a real interface for other destinations";
}
