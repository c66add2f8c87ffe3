using PacketDotNet;
using SharpPcap;
using SharpPcap.LibPcap;

// Captures on one interface (run it inside a namespace with `ip netns exec`) and prints one
// line per packet the tests care about, until its standard input closes or time runs out:
//   syn <source> <destination> dscp N  a TCP SYN and its DiffServ class
//   tcp <source> <destination> dscp N  a TCP segment carrying data, and its DiffServ class
//   arp <operation> <sender-ip> <target-ip>  an ARP packet
//   na <target>                       an ICMPv6 neighbour advertisement
//   ns <source> <target>              an ICMPv6 neighbour solicitation (source :: for a DAD probe)
//   udp <source> <destination> dscp N  a UDP datagram and its DiffServ class
//   dhcp <seconds> <type> <source>     with the fourth argument `dhcp`: a DHCP message (to or from
//                                      port 67), its capture time (Unix seconds) and its type (option 53)
// Usage: PcapProbe <interface> <bpf filter> <seconds> [dhcp]
if (args.Length < 3) { Console.Error.WriteLine("usage: PcapProbe <interface> <filter> <seconds>"); return 2; }
var device = LibPcapLiveDeviceList.New().FirstOrDefault(d => d.Name == args[0]);
if (device is null) { Console.Error.WriteLine($"no interface {args[0]}"); return 1; }
device.Open(new DeviceConfiguration { Mode = DeviceModes.Promiscuous, ReadTimeout = 100, Immediate = true, BufferSize = 64 << 20 });
device.Filter = args[1];
bool dhcp = args.ElementAtOrDefault(3) == "dhcp";
var lines = new System.Collections.Concurrent.BlockingCollection<string>();
device.OnPacketArrival += (_, e) =>
{
    var packet = Packet.ParsePacket(e.GetPacket().LinkLayerType, e.GetPacket().Data);
    if (dhcp)
    {
        if (packet.Extract<UdpPacket>() is { } d && (d.DestinationPort == 67 || d.SourcePort == 67) && d.ParentPacket is IPPacket dhcpIp)
            lines.Add($"dhcp {e.GetPacket().Timeval.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)} {DhcpType(d.PayloadData ?? d.PayloadPacket?.Bytes ?? [])} {dhcpIp.SourceAddress}");
        return;
    }
    if (packet.Extract<TcpPacket>() is { Synchronize: true, Acknowledgment: false } tcp && tcp.ParentPacket is IPPacket ip)
        lines.Add($"syn {ip.SourceAddress} {ip.DestinationAddress} dscp {Dscp(ip)}");
    else if (packet.Extract<TcpPacket>() is { PayloadData.Length: > 0 } data && data.ParentPacket is IPPacket dip)
        lines.Add($"tcp {dip.SourceAddress} {dip.DestinationAddress} dscp {Dscp(dip)}");
    else if (packet.Extract<ArpPacket>() is { } arp)
        lines.Add($"arp {arp.Operation} {arp.SenderProtocolAddress} {arp.TargetProtocolAddress}");
    else if (packet.Extract<IcmpV6Packet>() is { Type: IcmpV6Type.NeighborAdvertisement } && packet is EthernetPacket)
        // Ethernet (14) + IPv6 header (40; an NA carries no extension headers) + 8: the target.
        lines.Add($"na {new System.Net.IPAddress(e.GetPacket().Data.AsSpan(14 + 40 + 8, 16))}");
    else if (packet.Extract<IcmpV6Packet>() is { Type: IcmpV6Type.NeighborSolicitation } && packet is EthernetPacket && packet.Extract<IPv6Packet>() is { } nsIp)
        // The same layout: the target follows the ICMPv6 header and 4 reserved bytes.
        lines.Add($"ns {nsIp.SourceAddress} {new System.Net.IPAddress(e.GetPacket().Data.AsSpan(14 + 40 + 8, 16))}");
    else if (packet.Extract<UdpPacket>() is { } udp && udp.ParentPacket is IPPacket uip)
        lines.Add($"udp {uip.SourceAddress} {uip.DestinationAddress} dscp {Dscp(uip)}");
};
device.StartCapture();
Console.WriteLine("ready");
var deadline = DateTime.UtcNow.AddSeconds(double.Parse(args[2]));
var stdinClosed = Task.Run(() => Console.In.ReadToEnd());
while (DateTime.UtcNow < deadline && !stdinClosed.IsCompleted)
    if (lines.TryTake(out var line, 50)) Console.WriteLine(line);
// Let the last packets through the capture buffer.
Thread.Sleep(300);
device.StopCapture();
while (lines.TryTake(out var rest)) Console.WriteLine(rest);
var stats = device.Statistics;
Console.WriteLine($"end received {stats.ReceivedPackets} dropped {stats.DroppedPackets}");
device.Close();
return 0;

// Option 53 of a BOOTP payload (PacketDotNet parses it as a packet of its own, so it is that packet's bytes) (1 DISCOVER, 2 OFFER, 3 REQUEST, 4 DECLINE, 5 ACK, 6 NAK, 7 RELEASE),
// 0 when it has none: the options follow the 236-byte header and the 4-byte magic cookie.
static int DhcpType(byte[] b)
{
    for (int i = 240; i + 1 < b.Length && b[i] != 255;)
    {
        if (b[i] == 0) { i++; continue; }
        if (b[i] == 53 && i + 2 < b.Length) return b[i + 2];
        i += 2 + b[i + 1];
    }
    return 0;
}

// The DiffServ code point: the upper six bits of IPv4's TOS or IPv6's traffic class.
static int Dscp(IPPacket ip) => ip is IPv4Packet v4 ? v4.TypeOfService >> 2 : ip is IPv6Packet v6 ? v6.TrafficClass >> 2 : -1;
