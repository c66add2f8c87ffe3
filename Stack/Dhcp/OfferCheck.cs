using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using SockShim.Stack.Addressing;
using SockShim.Stack.Configuration;
using SockShim.Stack.Provisioning;
using SockShim.Stack.Provisioning.Netlink;
using SockShim.Stack.Wire;
using Tmds.Linux;

namespace SockShim.Stack.Dhcp;

/// <summary>Why an offered or leased address is refused; the metric's "reason" tag.</summary>
internal enum OfferRejection { None, HostAddress, Router, Server, NetworkAddress, BroadcastAddress, OutsidePool }

/// <summary>What an OFFER or ACK says about the address it hands out.</summary>
internal readonly record struct OfferFacts(IPAddress Address, IPAddress? ServerId, IPAddress? Source, IPAddress? SubnetMask, IReadOnlyList<IPAddress> Routers)
{
    public static OfferFacts Of(DhcpMessage m, IPAddress? source) =>
        new(m.YourAddress, m.ServerId, source, m.SubnetMask, m.Routers ?? []);
}

/// <summary>What the host already uses: which of the addresses asked about are its own (any
/// interface), and the gateways of its routes.</summary>
internal readonly record struct HostView(IReadOnlyCollection<IPAddress> Addresses, IReadOnlyCollection<IPAddress> Gateways)
{
    /// <summary>Read at an offer: whether <paramref name="offered"/> is already local to the host
    /// (one RTM_GETROUTE: the kernel's own answer, RTN_LOCAL, for an address on any interface or
    /// inside a local route), and the IPv4 gateways of its routes (<paramref name="gateways"/>,
    /// kept by a <see cref="HostGateways"/>, or read now). Not cached across acquisitions: an
    /// address added a moment ago must count. Asking about the one address
    /// costs the same however many the host has; listing them all cost 0.1-0.4 ms a read with the
    /// pool's 200 on the interface (an address dump), and 3.2 ms through
    /// NetworkInterface.GetAllNetworkInterfaces, which is left as the fallback when netlink
    /// cannot be opened.</summary>
    public static HostView Read(IPAddress offered, RouteNetlink? netlink = null, IReadOnlyCollection<IPAddress>? gateways = null)
    {
        var addresses = new HashSet<IPAddress>();
        if (IsLocal(offered, netlink) is not { } local)
        {
            try
            {
                foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
                    foreach (var a in nic.GetIPProperties().UnicastAddresses) addresses.Add(a.Address);
            }
            catch (NetworkInformationException) { }
        }
        else if (local) addresses.Add(offered);
        return new HostView(addresses, gateways ?? HostGateways.Read() ?? []);
    }

    // Null when the kernel cannot be asked. On the caller's socket when it has one (a socket of
    // its own costs about as much as the question).
    private static bool? IsLocal(IPAddress address, RouteNetlink? netlink)
    {
        using var own = netlink is null ? RouteNetlink.Open(out _) : null;
        var socket = netlink ?? own;
        if (socket is null) return null;
        int error = socket.RouteTypeOf(address, out byte type);
        // No route at all (ENETUNREACH) is an answer too: then it is surely not local.
        if (error != 0 && error != Tmds.Linux.LibC.ENETUNREACH) return null;
        return error == 0 && type == Interop.rtnetlink.RTN_LOCAL;
    }
}

/// <summary>
/// Which addresses a DHCP server may give a socket. Any host of the link can answer a DISCOVER
/// first, and nothing in DHCPv4 authenticates it, so the offer is judged by what it would do on
/// this host: an address the host or its router already uses would take their traffic (and with
/// --announce SockShim would claim it on the link by gratuitous ARP), the subnet's network and
/// broadcast addresses are not a host's, the server's own address is its own, and an address
/// outside the pool was never this pool's to use. A pure function of the offer, the pool and
/// what the host holds, so each rule is tested alone.
/// </summary>
internal static class OfferCheck
{
    public static string Tag(OfferRejection r) => r switch
    {
        OfferRejection.HostAddress => "host-address",
        OfferRejection.Router => "router",
        OfferRejection.Server => "server",
        OfferRejection.NetworkAddress => "network-address",
        OfferRejection.BroadcastAddress => "broadcast-address",
        OfferRejection.OutsidePool => "outside-pool",
        _ => "none",
    };

    /// <summary>Accepts (None, "") or names the first rule the address breaks, with the reason in
    /// words. The most specific rules come first, so an address that is the host's own and also
    /// outside the pool is reported as the host's.</summary>
    public static (OfferRejection Reason, string Why) Judge(OfferFacts offer, PoolDefinition pool, HostView host)
    {
        var a = offer.Address;
        if (a.AddressFamily != AddressFamily.InterNetwork || a.Equals(IPAddress.Any))
            return (OfferRejection.OutsidePool, $"{a} is not an IPv4 host address");
        if (host.Addresses.Contains(a))
            return (OfferRejection.HostAddress, $"{a} is already an address of this host");
        if (offer.Routers.Contains(a))
            return (OfferRejection.Router, $"{a} is the subnet's router (option 3 of the same reply)");
        if (host.Gateways.Contains(a))
            return (OfferRejection.Router, $"{a} is the gateway of one of this host's routes");
        if (a.Equals(offer.ServerId) || a.Equals(offer.Source))
            return (OfferRejection.Server, $"{a} is the DHCP server's own address");
        if (Reserved(a, offer.SubnetMask, pool) is { } reserved) return reserved;
        if (pool.IndexOf(a) < 0)
            return (OfferRejection.OutsidePool, $"{a} is outside the pool's ranges ({string.Join(", ", pool.Ranges)}" +
                (pool.Exclusions.Count > 0 ? $" less {string.Join(", ", pool.Exclusions)}" : "") + "); set the pool's ranges to the server's subnet");
        return (OfferRejection.None, "");
    }

    // The network and broadcast addresses of the subnet: from the reply's mask (option 1) when
    // it is a contiguous mask shorter than /31 (a /31 or /32 has neither, RFC 3021), and from
    // each pool range that is exactly one such prefix.
    private static (OfferRejection, string)? Reserved(IPAddress a, IPAddress? mask, PoolDefinition pool)
    {
        uint n = (uint)AddressNumber.Of(a).Low;
        if (mask is not null && mask.AddressFamily == AddressFamily.InterNetwork)
        {
            uint m = (uint)AddressNumber.Of(mask).Low;
            bool contiguous = (~m & (~m + 1)) == 0;
            int bits = System.Numerics.BitOperations.PopCount(m);
            if (contiguous && bits is > 0 and < 31)
            {
                if ((n & ~m) == 0) return (OfferRejection.NetworkAddress, $"{a} is the network address of its subnet {a}/{bits} (option 1)");
                if ((n | ~m) == n) return (OfferRejection.BroadcastAddress, $"{a} is the broadcast address of its subnet {new AddressNumber(0, n & m).ToAddress(AddressFamily.InterNetwork)}/{bits} (option 1)");
            }
        }
        foreach (var r in pool.Ranges)
        {
            if (r.Family != AddressFamily.InterNetwork || !r.Contains(a)) continue;
            // Only a prefix longer than two addresses has a network and a broadcast address.
            if (r.PrefixLength is not < 31) continue;
            if (n == r.FirstNumber.Low) return (OfferRejection.NetworkAddress, $"{a} is the network address of the pool's {r}");
            if (n == r.LastNumber.Low) return (OfferRejection.BroadcastAddress, $"{a} is the broadcast address of the pool's {r}");
        }
        return null;
    }
}
