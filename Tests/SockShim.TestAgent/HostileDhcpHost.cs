using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using SockShim.Stack.Wire;

/// <summary>
/// A hostile host on the LAN, not a server: it captures every DHCPREQUEST on the wire that
/// renews or rebinds a held lease (ciaddr set; the bridge floods, so it sees the unicast
/// renewals too) and at once answers each with forged replies carrying the live xid:
///   nak-foreign-id   NAK naming this host as server, from this host
///   nak-wrong-source NAK naming the real server, from this host
///   ack-wrong-source ACK for the lease naming the real server, from this host
///   nak-no-client-id NAK naming the real server without option 61, from this host
///   ack-other-yiaddr ACK for another address, from the real server's address (spoofed) and with its id
///   ack-no-server-id ACK for the lease without option 54, from the real server's address (spoofed)
///   nak-broadcast    NAK naming this host as server, broadcast
/// A client that took any of them would lose or move the lease. It never forges the one reply
/// nothing can tell from the server's (a NAK from the server's address with its id and our
/// client id): DHCPv4 has no authentication. Prints "answered CIADDR xid X" per request and,
/// when stdin closes or time runs out, "requests N forged M".
/// </summary>
internal static class HostileDhcpHost
{
    public static int Run(string device, IPAddress own, IPAddress server, IPAddress otherAddress, double seconds)
    {
        // SOCK_DGRAM packet socket for IPv4 (ETH_P_IP in network order): whole IP packets,
        // including those the flooding bridge delivers for other hosts' MACs (PACKET_OTHERHOST).
        using var capture = new Socket(AddressFamily.Packet, SocketType.Dgram, (ProtocolType)BinaryPrimitives.ReverseEndianness((ushort)0x0800));
        capture.ReceiveTimeout = 200;
        // IPPROTO_RAW implies IP_HDRINCL: the source address is this program's to choose.
        using var raw = new Socket(AddressFamily.InterNetwork, SocketType.Raw, ProtocolType.Raw);
        raw.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.Broadcast, true);
        raw.SetRawSocketOption(1 /* SOL_SOCKET */, 25 /* SO_BINDTODEVICE */, Encoding.ASCII.GetBytes(device + "\0"));
        var buffer = new byte[2048];
        var seen = new HashSet<(uint, IPAddress)>();
        int requests = 0, forged = 0;
        bool stop = false;
        _ = Task.Run(() => { Console.In.ReadToEnd(); stop = true; });
        Console.WriteLine("listening");
        Console.Out.Flush();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(seconds);
        while (!stop && DateTime.UtcNow < deadline)
        {
            int n;
            try { n = capture.Receive(buffer); }
            catch (SocketException) { continue; }
            if (!TryDhcpRequest(buffer.AsSpan(0, n), out var request)) continue;
            if (request.ClientAddress.Equals(IPAddress.Any) || request.MessageType != DhcpMessageType.Request) continue;
            // The client's retransmissions carry the same xid: answered once is enough.
            if (!seen.Add((request.TransactionId, request.ClientAddress))) continue;
            requests++;
            var lease = request.ClientAddress;
            var variants = new (DhcpMessage Reply, IPAddress Source, IPAddress Destination)[]
            {
                (Forge(request, DhcpMessageType.Nak, own, IPAddress.Any), own, lease),
                (Forge(request, DhcpMessageType.Nak, server, IPAddress.Any), own, lease),
                (Forge(request, DhcpMessageType.Ack, server, lease), own, lease),
                (Without(Forge(request, DhcpMessageType.Nak, server, IPAddress.Any), clientId: true), own, lease),
                (Forge(request, DhcpMessageType.Ack, server, otherAddress), server, lease),
                (Without(Forge(request, DhcpMessageType.Ack, server, lease), serverId: true), server, lease),
                (Forge(request, DhcpMessageType.Nak, own, IPAddress.Any), own, IPAddress.Broadcast),
            };
            foreach (var (reply, source, destination) in variants)
            {
                raw.SendTo(Packet(reply, source, destination), new IPEndPoint(destination, 0));
                forged++;
            }
            Console.WriteLine($"answered {lease} xid 0x{request.TransactionId:x8}");
            Console.Out.Flush();
        }
        Console.WriteLine($"requests {requests} forged {forged}");
        return 0;
    }

    /// <summary>A client's DHCP message to port 67 inside an IPv4 packet.</summary>
    private static bool TryDhcpRequest(ReadOnlySpan<byte> ip, out DhcpMessage request)
    {
        request = null!;
        if (ip.Length < 28 || ip[0] >> 4 != 4 || ip[9] != 17) return false;
        int header = (ip[0] & 0xf) * 4;
        if (ip.Length < header + 8 || BinaryPrimitives.ReadUInt16BigEndian(ip[(header + 2)..]) != DhcpMessage.ServerPort) return false;
        return DhcpMessage.TryParse(ip[(header + 8)..], out request, out _) && !request.IsReply;
    }

    private static DhcpMessage Forge(DhcpMessage request, DhcpMessageType type, IPAddress serverId, IPAddress yiaddr) => new()
    {
        Op = 2,
        MessageType = type,
        TransactionId = request.TransactionId,
        YourAddress = yiaddr,
        HardwareAddress = request.HardwareAddress,
        ClientId = request.ClientId,
        ServerId = serverId,
        LeaseSeconds = type == DhcpMessageType.Ack ? 600 : null,
        SubnetMask = type == DhcpMessageType.Ack ? IPAddress.Parse("255.255.255.0") : null,
        Text = type == DhcpMessageType.Nak ? "forged" : null,
    };

    private static DhcpMessage Without(DhcpMessage m, bool clientId = false, bool serverId = false)
    {
        if (clientId) m.ClientId = null;
        if (serverId) m.ServerId = null;
        return m;
    }

    /// <summary>IPv4 + UDP 67→68 around the message. The kernel fills the IP checksum and id;
    /// a UDP checksum of 0 means none (RFC 768).</summary>
    private static byte[] Packet(DhcpMessage reply, IPAddress source, IPAddress destination)
    {
        var dhcp = new byte[DhcpMessage.MaxEmitLength];
        int length = reply.Emit(dhcp);
        var p = new byte[20 + 8 + length];
        p[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), (ushort)p.Length);
        p[8] = 64;
        p[9] = 17;
        source.TryWriteBytes(p.AsSpan(12), out _);
        destination.TryWriteBytes(p.AsSpan(16), out _);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(20), DhcpMessage.ServerPort);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(22), DhcpMessage.ClientPort);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(24), (ushort)(8 + length));
        dhcp.AsSpan(0, length).CopyTo(p.AsSpan(28));
        return p;
    }
}
