using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using PacketDotNet;
using PacketDotNet.Utils;
using SharpPcap;
using SharpPcap.LibPcap;

namespace SockShim.Stack.Provisioning;

/// <summary>
/// Tells the link about an address just added, so neighbours learn its owner at once instead of
/// at their next cache miss: a gratuitous ARP (IPv4) or an unsolicited neighbour advertisement
/// with the override flag (IPv6), sent through libpcap on the interface.
/// </summary>
internal sealed class Announcer(string interfaceName) : IDisposable
{
    private readonly object _gate = new();
    private LibPcapLiveDevice? _device;
    private PhysicalAddress? _mac;

    /// <summary>Sends the announcement; a failure (no libpcap, no CAP_NET_RAW) is returned, not thrown:
    /// the address works without it, neighbours just learn it later.</summary>
    public string? Announce(IPAddress address)
    {
        try
        {
            lock (_gate)
            {
                if (_device is null)
                {
                    _mac = new PhysicalAddress(HostFacts.HardwareAddress(interfaceName) ?? new byte[6]);
                    _device = LibPcapLiveDeviceList.New().FirstOrDefault(d => d.Name == interfaceName)
                        ?? throw new InvalidOperationException($"libpcap does not list interface '{interfaceName}'");
                    _device.Open(new DeviceConfiguration { Mode = DeviceModes.None, ReadTimeout = 100 });
                }
                _device.SendPacket(Frame(address, _mac!));
            }
            return null;
        }
        catch (Exception ex) when (ex is PcapException or DllNotFoundException or InvalidOperationException)
        {
            return $"announcing {address} on {interfaceName} failed: {ex.Message}";
        }
    }

    /// <summary>The announcement frame for <paramref name="address"/> from <paramref name="mac"/>.</summary>
    public static byte[] Frame(IPAddress address, PhysicalAddress mac)
    {
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            // Gratuitous ARP: a request for the address by its own owner.
            return Wire.ArpFrames.Request(mac, address, address);
        }

        var allNodes = IPAddress.Parse("ff02::1");
        var body = new byte[32];
        body[0] = 136;          // neighbour advertisement
        body[4] = 0x20;         // override: replace what neighbours cached
        address.GetAddressBytes().CopyTo(body, 8);
        body[24] = 2;           // option: target link-layer address
        body[25] = 1;           // length in units of 8 bytes
        mac.GetAddressBytes().CopyTo(body, 26);
        // PacketDotNet 1.4.8 miscomputes this checksum for a packet built this way: done here.
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(body.AsSpan(2), Icmpv6Checksum(address, allNodes, body));
        var ipv6 = new IPv6Packet(address, allNodes) { HopLimit = 255, NextHeader = PacketDotNet.ProtocolType.IcmpV6 };
        // The ICMPv6 header (type, code, checksum) as the packet's header, the rest as its payload.
        ipv6.PayloadPacket = new IcmpV6Packet(new ByteArraySegment(body, 0, 4)) { PayloadData = body[4..] };
        var frame = new EthernetPacket(mac, PhysicalAddress.Parse("33-33-00-00-00-01"), EthernetType.IPv6) { PayloadPacket = ipv6 };
        return frame.Bytes;
    }

    /// <summary>RFC 4443: the one's-complement sum over the IPv6 pseudo-header and the message.</summary>
    private static ushort Icmpv6Checksum(IPAddress source, IPAddress destination, byte[] message)
    {
        var pseudo = new byte[40 + message.Length];
        source.GetAddressBytes().CopyTo(pseudo, 0);
        destination.GetAddressBytes().CopyTo(pseudo, 16);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(pseudo.AsSpan(32), (uint)message.Length);
        pseudo[39] = 58; // next header: ICMPv6
        message.CopyTo(pseudo, 40);
        pseudo[42] = pseudo[43] = 0; // the checksum field itself counts as zero
        uint sum = 0;
        for (int i = 0; i + 1 < pseudo.Length; i += 2) sum += (uint)(pseudo[i] << 8 | pseudo[i + 1]);
        if (pseudo.Length % 2 == 1) sum += (uint)(pseudo[^1] << 8);
        while (sum >> 16 != 0) sum = (sum & 0xffff) + (sum >> 16);
        return (ushort)~sum;
    }

    public void Dispose()
    {
        lock (_gate) _device?.Close();
    }
}
