using System.Net;
using System.Net.NetworkInformation;
using Microsoft.Extensions.Logging;
using SockShim.Stack.Provisioning;
using SockShim.Stack.Wire;

namespace SockShim.Stack.Dhcp;

/// <summary>
/// RFC 5227 address conflict detection for a lease just bound (RFC 2131 4.4.1: the client should
/// check the address before using it): an ARP probe (sender 0.0.0.0) for the address, and any
/// ARP from another station claiming it means the address is in use and is declined. A packet
/// socket for ARP only, non-blocking, read from the DHCP client's own loop.
/// </summary>
internal sealed class ConflictProbe : IDisposable
{
    private const ushort EthPArp = 0x0806;
    private readonly LinkSocket _link;
    private readonly PhysicalAddress _mac;
    private readonly byte[] _buffer = new byte[1514];
    private readonly string _interface;
    private readonly ILogger _log = Telemetry.StackLogging.For("SockShim.Dhcp");
    private readonly Dictionary<IPAddress, (DateTimeOffset Deadline, Action<bool> Done)> _probing = new();

    private ConflictProbe(LinkSocket link, PhysicalAddress mac, string interfaceName)
    {
        _link = link;
        _mac = mac;
        _interface = interfaceName;
    }

    /// <summary>The packet socket, for the client loop's poll.</summary>
    public int Descriptor => _link.Descriptor;

    /// <summary>Opens the probe's socket on <paramref name="interfaceName"/>; null with a reason.</summary>
    public static ConflictProbe? Open(string interfaceName, byte[] mac, out string why) =>
        LinkSocket.Open(interfaceName, EthPArp, "an ARP socket for the conflict probe", out why) is { } link ? new ConflictProbe(link, new PhysicalAddress(mac), interfaceName) : null;

    /// <summary>Probes <paramref name="address"/>: <paramref name="done"/> gets true when another
    /// station claims it, false when none has by <paramref name="deadline"/> (see <see cref="Settle"/>).</summary>
    public void Start(IPAddress address, DateTimeOffset deadline, Action<bool> done)
    {
        if (_link.Send(ArpFrames.Request(_mac, IPAddress.Any, address)) is var error and not 0)
        {
            // Fail open: the server leased it, and the kernel still refuses a duplicate on this host.
            _log.LogWarning("dhcp {Interface}: the ARP probe for {Address} could not be sent (errno {Error}); using it unchecked", _interface, address, error);
            done(false);
            return;
        }
        _probing[address] = (deadline, done);
    }

    /// <summary>Tells the probes whose wait is over that their address is free; the earlier of
    /// <paramref name="next"/> and the next probe deadline.</summary>
    public DateTimeOffset Settle(DateTimeOffset now, DateTimeOffset next)
    {
        if (_probing.Count == 0) return next;
        List<IPAddress>? due = null;
        foreach (var (address, probe) in _probing)
        {
            if (probe.Deadline <= now) (due ??= new()).Add(address);
            else if (probe.Deadline < next) next = probe.Deadline;
        }
        if (due is not null)
            foreach (var address in due)
                if (_probing.Remove(address, out var probe)) probe.Done(false);
        return next;
    }

    /// <summary>Reads what arrived: an address being probed that another station claims (as an
    /// ARP sender), or probes for at the same time, is a conflict.</summary>
    public void Drain()
    {
        for (int i = 0; i < 256; i++)
        {
            int n = _link.Receive(_buffer);
            if (n == 0) return;
            if (!ArpFrames.TryRead(_buffer.AsSpan(0, n), out var sender, out var senderMac, out var target)) continue;
            // Our own frames come back on a packet socket.
            if (senderMac.Equals(_mac)) continue;
            // RFC 5227 §2.1.1: another station's probe (sender 0.0.0.0) for the address counts as
            // a conflict too: two hosts about to use one address both back off. An ordinary
            // request for it (a station's own address as sender) only asks who has it.
            bool probing = sender.Equals(IPAddress.Any);
            var address = probing ? target : sender;
            if (!_probing.Remove(address, out var probe)) continue;
            _log.LogWarning(probing ? "dhcp {Interface}: {Address} is being probed for by {Mac} on the link too: declining it"
                : "dhcp {Interface}: {Address} is in use by {Mac} on the link: declining it", _interface, address, senderMac);
            probe.Done(true);
        }
    }

    public void Dispose() => _link.Dispose();
}
