using System.Net;
using System.Net.NetworkInformation;
using PacketDotNet;

namespace SockShim.Stack.Wire;

/// <summary>The ARP requests SockShim sends, built with PacketDotNet: a gratuitous ARP (sender
/// and target the address itself) and an RFC 5227 probe (sender 0.0.0.0); and who sent one.</summary>
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

    // Ethernet type ARP (offset 12), then ARP's hardware type Ethernet, protocol type IPv4, and
    // their address lengths (offset 14): the frames of RFC 826 this reads, 42 bytes at least.
    private static ReadOnlySpan<byte> ArpOverEthernet => [0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4];
    private const int SenderMac = 22, SenderAddress = 28, TargetAddress = 38, Length = 42;

    /// <summary>The sender of an ARP frame (request or reply) and its hardware address, or false
    /// for anything else; never throws on a short or foreign frame.</summary>
    public static bool TryReadSender(ReadOnlySpan<byte> frame, out IPAddress sender, out PhysicalAddress senderMac) =>
        TryRead(frame, out sender, out senderMac, out _);

    /// <summary>As <see cref="TryReadSender"/>, with the address asked about (a probe's, when the
    /// sender is 0.0.0.0).</summary>
    public static bool TryRead(ReadOnlySpan<byte> frame, out IPAddress sender, out PhysicalAddress senderMac, out IPAddress target)
    {
        bool arp = frame.Length >= Length && frame[12..20].SequenceEqual(ArpOverEthernet);
        sender = arp ? new IPAddress(frame.Slice(SenderAddress, 4)) : IPAddress.None;
        senderMac = arp ? new PhysicalAddress(frame.Slice(SenderMac, 6).ToArray()) : Unknown;
        target = arp ? new IPAddress(frame.Slice(TargetAddress, 4)) : IPAddress.None;
        return arp;
    }
}
