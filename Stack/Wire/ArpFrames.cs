using System.Net;
using System.Net.NetworkInformation;
using PacketDotNet;

namespace SockShim.Stack.Wire;

/// <summary>The ARP requests SockShim sends, built with PacketDotNet: a gratuitous ARP (sender
/// and target the address itself) and an RFC 5227 probe (sender 0.0.0.0).</summary>
internal static class ArpFrames
{
    private static readonly PhysicalAddress Broadcast = PhysicalAddress.Parse("FF-FF-FF-FF-FF-FF");
    private static readonly PhysicalAddress Unknown = PhysicalAddress.Parse("00-00-00-00-00-00");

    /// <summary>A broadcast ARP request from <paramref name="mac"/> asking who has <paramref name="target"/>.</summary>
    public static byte[] Request(PhysicalAddress mac, IPAddress sender, IPAddress target) =>
        new EthernetPacket(mac, Broadcast, EthernetType.Arp)
        {
            PayloadPacket = new ArpPacket(ArpOperation.Request, Unknown, target, mac, sender),
        }.Bytes;

    /// <summary>The sender of an ARP frame (request or reply) and its hardware address, or false
    /// for anything else; never throws on a short or foreign frame.</summary>
    public static bool TryReadSender(ReadOnlySpan<byte> frame, out IPAddress sender, out PhysicalAddress senderMac)
    {
        sender = IPAddress.None;
        senderMac = Unknown;
        // Ethernet (14) + ARP for IPv4 over Ethernet (28).
        if (frame.Length < 42) return false;
        try
        {
            if (Packet.ParsePacket(LinkLayers.Ethernet, frame.ToArray()).Extract<ArpPacket>() is not { } arp) return false;
            if (arp.ProtocolAddressType != EthernetType.IPv4 || arp.HardwareAddressLength != 6) return false;
            sender = arp.SenderProtocolAddress;
            senderMac = arp.SenderHardwareAddress;
            return true;
        }
        catch (Exception ex) when (ex is ArgumentException or IndexOutOfRangeException or InvalidOperationException or NotSupportedException)
        {
            return false;
        }
    }
}
