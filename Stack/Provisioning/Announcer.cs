using System.Buffers.Binary;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace SockShim.Stack.Provisioning;

/// <summary>
/// Tells the link about an address just added, so neighbours learn its owner at once instead of
/// at their next cache miss: a gratuitous ARP (IPv4) or an unsolicited neighbour advertisement
/// with the override flag (IPv6), sent on a packet socket of the interface.
/// </summary>
internal sealed class Announcer(string interfaceName) : IDisposable
{
    // Opened at the first announcement: making a provisioner does no I/O. It only sends (EtherType 0).
    private readonly Lazy<(LinkSocket? Socket, string Why, PhysicalAddress Mac)> _link = new(() =>
        (LinkSocket.Open(interfaceName, 0, "a packet socket for announcements", out string why), why,
         new PhysicalAddress(HostFacts.HardwareAddress(interfaceName) ?? new byte[6])));

    /// <summary>Sends the announcement; a failure (no CAP_NET_RAW) is returned, not thrown:
    /// the address works without it, neighbours just learn it later.</summary>
    public string? Announce(IPAddress address)
    {
        var (link, why, mac) = _link.Value;
        int error = link?.Send(Frame(address, mac)) ?? -1;
        return error == 0 ? null : $"announcing {address} on {interfaceName} failed: {(link is null ? why : $"errno {error}")}";
    }

    /// <summary>The announcement frame for <paramref name="address"/> from <paramref name="mac"/>.</summary>
    public static byte[] Frame(IPAddress address, PhysicalAddress mac)
    {
        // Gratuitous ARP: a request for the address by its own owner.
        if (address.AddressFamily == AddressFamily.InterNetwork) return Wire.ArpFrames.Request(mac, address, address);

        // Written out: PacketDotNet 1.4.8 miscomputes the checksum of this message.
        var frame = new byte[14 + 40 + 32];
        // Ethernet, to the all-nodes group's multicast MAC (33:33 and the group's low 32 bits).
        new byte[] { 0x33, 0x33, 0, 0, 0, 1 }.CopyTo(frame, 0);
        mac.GetAddressBytes().CopyTo(frame, 6);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), 0x86DD);
        // IPv6: version 6, 32 bytes of ICMPv6, hop limit 255 (RFC 4861 refuses anything else), to ff02::1.
        frame[14] = 0x60;
        frame[19] = 32;
        frame[20] = 58;
        frame[21] = 255;
        address.GetAddressBytes().CopyTo(frame, 22);
        IPAddress.Parse("ff02::1").GetAddressBytes().CopyTo(frame, 38);
        var body = frame.AsSpan(54);
        body[0] = 136;          // neighbour advertisement
        body[4] = 0x20;         // override: replace what neighbours cached
        address.GetAddressBytes().CopyTo(body[8..]);
        body[24] = 2;           // option: target link-layer address
        body[25] = 1;           // length in units of 8 bytes
        mac.GetAddressBytes().CopyTo(body[26..]);
        // RFC 4443: the one's-complement sum over the pseudo-header (the addresses, in place in
        // the IPv6 header, the length and next header) and the message.
        uint sum = 32 + 58;
        for (int i = 22; i < frame.Length; i += 2) sum += (uint)(frame[i] << 8 | frame[i + 1]);
        while (sum >> 16 != 0) sum = (sum & 0xffff) + (sum >> 16);
        BinaryPrimitives.WriteUInt16BigEndian(body[2..], (ushort)~sum);
        return frame;
    }

    public void Dispose()
    {
        if (_link.IsValueCreated) _link.Value.Socket?.Dispose();
    }
}
