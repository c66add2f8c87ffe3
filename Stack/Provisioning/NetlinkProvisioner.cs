using System.Net;
using Microsoft.Extensions.Logging;
using SockShim.Stack.Configuration;
using SockShim.Stack.Errors;
using SockShim.Stack.Provisioning.Netlink;
using Tmds.Linux;

namespace SockShim.Stack.Provisioning;

/// <summary>
/// Puts each socket's address on one named interface (as a /32 or /128, IPv6 without DAD) when
/// it is acquired and takes it off when released, over NETLINK_ROUTE. The add is exclusive, so
/// the kernel refuses an address already present on the host, and each address carries
/// SockShim's mark in its protocol field, so `sockshim gc` can tell them from others. An address
/// given a lifetime (a DHCP lease's) is removed by the kernel when it runs out, whether or not
/// this process is still there to do it.
/// </summary>
internal sealed class NetlinkProvisioner(string interfaceName, Announcer? announcer = null, ArpProbe? conflictProbe = null) : IAddressProvisioner, IDisposable
{
    /// <summary>The IFA_PROTO value marking addresses SockShim added ('S').</summary>
    public const byte Mark = 0x53;

    private readonly Lazy<(RouteNetlink? Socket, int Error)> _netlink = new(() => (RouteNetlink.Open(out int e), e));
    private uint _index;

    public ProvisionerKind Kind => ProvisionerKind.Netlink;
    public string Interface => interfaceName;

    // Resolved at the first add: making a provisioner does no I/O, and the stack's host check
    // has already said whether the interface exists.
    private uint Index => _index != 0 ? _index : _index = HostFacts.InterfaceIndex(interfaceName) ?? 0;

    public StackError? Provision(IPAddress address, string pool, TimeSpan? lifetime = null)
    {
        var (socket, openError) = _netlink.Value;
        if (socket is null) return Failed(openError, address, pool);
        // The exclusive add refuses only this exact prefix on this interface: the host may have
        // the address under another prefix or on another interface, or route it as local
        // (AnyIP). Then it is local already, which one route lookup tells.
        if (socket.RouteTypeOf(address, out byte type) == 0 && type == Interop.rtnetlink.RTN_LOCAL)
            return new StackError(StackErrorCode.AddressInUse,
                $"address {address} of pool '{pool}' is already local to this host (on an interface, under some prefix, or in a local route); SockShim leaves it alone");
        // A static pool shared by hosts: another station answering for the address (or probing
        // for it now) means another host uses it. Asked before the add, so the address is never
        // on this host while it is in use elsewhere; a DHCP lease (a lifetime) was probed by its client.
        if (conflictProbe is not null && lifetime is null && address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork
            && conflictProbe.Conflict(address, pool) is { } conflict)
            return new StackError(StackErrorCode.AddressInUse, $"address {address} of pool '{pool}' cannot be used: {conflict}");
        // IPv6 on a shared link: the kernel's own duplicate address detection (RFC 4862 §5.4).
        bool dad = conflictProbe is not null && lifetime is null && address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6;
        if (dad && conflictProbe!.Recalled(address) is { } known)
            return new StackError(StackErrorCode.AddressInUse, $"address {address} of pool '{pool}' cannot be used: {known}");
        if (dad && DadOff() is { } off) return new StackError(StackErrorCode.ProvisionFailed, $"pool '{pool}': {off}");
        // IPv6 asks for the local route in the add's own system call (see WaitForLocalRoute).
        bool v6 = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6;
        byte routeType = 0;
        int error = v6
            ? socket.AddAddressAndAskRoute(Index, address, Mark, Seconds(lifetime), dad, out routeType)
            : socket.ChangeAddress(add: true, Index, address, Mark, Seconds(lifetime), dad);
        if (error != 0) return Failed(error, address, pool);
        if (dad && Duplicate(socket, address) is { } duplicate)
        {
            socket.ChangeAddress(add: false, Index, address, Mark);
            Telemetry.StackMetrics.Conflicts.Add(1, new KeyValuePair<string, object?>("pool", pool));
            Telemetry.StackLogging.For("SockShim.Pool").LogWarning("pool {Pool}: {Why}: skipping it", pool, duplicate);
            return new StackError(StackErrorCode.AddressInUse, $"address {address} of pool '{pool}' cannot be used: {conflictProbe!.Remember(address, duplicate)}");
        }
        if (v6 && (dad || routeType != Interop.rtnetlink.RTN_LOCAL)) WaitForLocalRoute(socket, address);
        // The address works without the announcement; neighbours then learn it at their next miss.
        announcer?.Announce(address);
        return null;
    }

    // A new IPv6 address gets its local route from the kernel's address work, a moment after the
    // add is acknowledged (IPv4 gets it at once); a reply that arrives before that route is
    // dropped, and the connect waits a second for the SYN to be sent again (measured here: one
    // connect in three made right after the add). So the add is done when the route is there:
    // usually it is by the answer asked for with the add itself, and this is not called.
    private static void WaitForLocalRoute(RouteNetlink socket, IPAddress address, int maxMilliseconds = 200)
    {
        // Yield rather than sleep: the kernel work that adds the route runs in microseconds once
        // it gets a CPU, and a 1 ms sleep would cost far more than the wait itself.
        var deadline = Environment.TickCount64 + maxMilliseconds;
        while ((socket.RouteTypeOf(address, out byte type) != 0 || type != Interop.rtnetlink.RTN_LOCAL) && Environment.TickCount64 < deadline)
            Thread.Yield();
    }

    /// <summary>How long the kernel's duplicate address detection may take before the address is
    /// given up as undecided (never used unchecked): with the default sysctls it waits up to
    /// rtr_solicit_delay (1 s) at random, sends dad_transmits (1) solicitations retrans_time
    /// (1 s) apart, and decides one retrans_time after the last.</summary>
    internal static readonly TimeSpan DadLimit = TimeSpan.FromSeconds(5);

    // Null when the kernel's DAD found no other node using the address; otherwise why it cannot
    // be used: a node answered (IFA_F_DADFAILED), or no decision within DadLimit.
    private string? Duplicate(RouteNetlink socket, IPAddress address)
    {
        long deadline = Environment.TickCount64 + (long)DadLimit.TotalMilliseconds;
        while (Environment.TickCount64 < deadline)
        {
            uint? flags = socket.AddressFlags(Index, address);
            if (flags is not { } f) return $"duplicate address detection: {address} left {interfaceName} while it was checked";
            if ((f & Interop.if_addr.IFA_F_DADFAILED) != 0) return $"{address} is in use by another node on {interfaceName} (IPv6 duplicate address detection failed)";
            if ((f & Interop.if_addr.IFA_F_TENTATIVE) == 0) return null;
            // The decision comes a second or two after the add: polling every 20 ms costs
            // nothing next to it (an address dump of one family).
            Thread.Sleep(20);
        }
        return $"duplicate address detection did not decide about {address} on {interfaceName} within {DadLimit.TotalSeconds:0} s";
    }

    // The kernel skips DAD where accept_dad or dad_transmits is 0, and on a loopback or NOARP
    // interface: the address would pass unchecked. Read once; null when DAD runs.
    private string? DadOff()
    {
        if (!_dadRead) (_dadOff, _dadRead) = (ReadDadOff(), true);
        return _dadOff;
    }
    private string? _dadOff;
    private bool _dadRead;

    private string? ReadDadOff()
    {
        string flagsPath = $"/sys/class/net/{interfaceName}/flags";
        string? flagsText = null;
        try { flagsText = File.ReadAllText(flagsPath).Trim(); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        // IFF_LOOPBACK 0x8, IFF_NOARP 0x80 (linux/if.h): neither sends neighbour solicitations for DAD.
        if (flagsText is null || !flagsText.StartsWith("0x") || !uint.TryParse(flagsText[2..], System.Globalization.NumberStyles.HexNumber, null, out uint ifFlags))
            return $"duplicate address detection cannot be confirmed on {interfaceName} ({flagsPath} is {flagsText ?? "unreadable"}), so the conflict probe of an IPv6 pool would check nothing";
        if ((ifFlags & 0x88) != 0)
            return $"{interfaceName} is a {((ifFlags & 0x8) != 0 ? "loopback" : "NOARP")} interface, where the kernel does no duplicate address detection, so the conflict probe of an IPv6 pool would check nothing; use it on an Ethernet interface of the shared link";
        foreach (var setting in (string[])["accept_dad", "dad_transmits"])
        {
            string path = $"/proc/sys/net/ipv6/conf/{interfaceName}/{setting}";
            string? value = null;
            try { value = File.ReadAllText(path).Trim(); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            if (value != "1" && !(int.TryParse(value, out int n) && n > 0))
                return $"duplicate address detection is off on {interfaceName} ({path} is {value ?? "unreadable"}), so the conflict probe of an IPv6 pool would check nothing; set net.ipv6.conf.{interfaceName}.{setting}=1";
        }
        return null;
    }

    // Runs on the DHCP client's thread at each renewal: one NLM_F_REPLACE request, acknowledged.
    // An error (the interface gone) is left to the socket's next use to find.
    public void Refresh(IPAddress address, TimeSpan lifetime) =>
        _netlink.Value.Socket?.RefreshAddress(Index, address, Mark, Seconds(lifetime));

    /// <summary>The kernel's lifetime for <paramref name="lifetime"/>: whole seconds rounded down,
    /// so the address never outlives the lease; at least 1 (0 is refused: EINVAL); below the
    /// kernel's "forever" value, which only no lifetime at all gets.</summary>
    internal static uint Seconds(TimeSpan? lifetime) => lifetime is not { } l
        ? Interop.if_addr.INFINITY_LIFE_TIME
        : (uint)Math.Clamp(Math.Floor(l.TotalSeconds), 1, Interop.if_addr.INFINITY_LIFE_TIME - 1);

    // Not acknowledged: the kernel removes the address within the send itself, and a refusal
    // (the address or the interface already gone) changed nothing that needs doing here.
    public void Deprovision(IPAddress address) =>
        _netlink.Value.Socket?.RemoveAddressUnacknowledged(Index, address, Mark);

    // The kernel's delete matches address and prefix, not the mark: a dead holder's address is
    // looked up first (one dump, only when reclaiming) and left alone unless it is SockShim's.
    public void DeprovisionLeftover(IPAddress address)
    {
        var socket = _netlink.Value.Socket;
        var present = new List<(uint Index, IPAddress Address, byte PrefixLength, byte Protocol)>();
        if (socket is null || socket.ListAddresses(present) != 0) return;
        if (present.Any(a => a.Index == Index && a.Address.Equals(address) && a.PrefixLength == Addressing.AddressMath.Bits(address.AddressFamily) && a.Protocol == Mark))
            socket.ChangeAddress(add: false, Index, address, Mark);
    }

    private StackError Failed(int error, IPAddress address, string pool)
    {
        if (error == LibC.EEXIST)
            return new StackError(StackErrorCode.AddressInUse, $"address {address} of pool '{pool}' is already present on this host (added by hand or by another program); SockShim leaves it alone");
        if (error == LibC.EPERM || error == LibC.EACCES)
            return new StackError(StackErrorCode.ProvisionFailed, $"adding {address} to {interfaceName} was refused: {HostFacts.NetAdminHelp}");
        if (error == LibC.ENODEV)
            return new StackError(StackErrorCode.ProvisionFailed, $"interface '{interfaceName}' (index {Index}) is gone");
        return new StackError(StackErrorCode.ProvisionFailed, $"adding {address} to {interfaceName} failed: errno {error}");
    }

    public void Dispose()
    {
        if (_netlink.IsValueCreated) _netlink.Value.Socket?.Dispose();
        announcer?.Dispose();
    }
}
