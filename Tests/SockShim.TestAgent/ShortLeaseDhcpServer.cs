using System.Net;
using System.Net.Sockets;
using SockShim.Stack.Wire;

/// <summary>
/// A careless DHCP server for the pacing tests: it answers every DISCOVER with an OFFER and every
/// REQUEST with an ACK carrying LEASE seconds and, unless T1 is "-", that T1 (option 58), from
/// FIRST upwards, one address per client identifier. Every reply is broadcast: sent from the
/// bridge's first address, the server id (a reply unicast to a leased address would leave from
/// the bridge's address in that subnet, which a renewing client rightly ignores). Stops when
/// stdin closes and prints its counts.
/// </summary>
internal static class ShortLeaseDhcpServer
{
    public static int Run(string device, IPAddress serverId, IPAddress first, uint lease, uint? renew)
    {
        using var socket = FakeDhcpServer.ServerSocket(device);
        var leases = new Dictionary<string, IPAddress>();
        uint next = BitConverter.ToUInt32(first.GetAddressBytes().Reverse().ToArray());
        int offers = 0, acks = 0;
        var send = new byte[DhcpMessage.MaxEmitLength];
        foreach (var request in FakeDhcpServer.ClientRequests(socket, TimeSpan.FromMinutes(3)))
        {
            if (request.ClientId is null) continue;
            string client = Convert.ToHexString(request.ClientId);
            if (!leases.TryGetValue(client, out var address))
                leases[client] = address = new IPAddress(BitConverter.GetBytes(next++).Reverse().ToArray());
            DhcpMessage answer;
            if (request.MessageType == DhcpMessageType.Discover)
            {
                answer = FakeDhcpServer.Reply(request, DhcpMessageType.Offer, address, serverId);
                offers++;
            }
            else if (request.MessageType == DhcpMessageType.Request)
            {
                answer = FakeDhcpServer.Reply(request, DhcpMessageType.Ack, address, serverId);
                acks++;
            }
            else continue;
            answer.LeaseSeconds = lease;
            answer.RenewalSeconds = renew;
            int length = answer.Emit(send);
            socket.SendTo(send.AsSpan(0, length), SocketFlags.None, new IPEndPoint(IPAddress.Broadcast, DhcpMessage.ClientPort));
        }
        Console.WriteLine($"offers {offers} acks {acks}");
        return 0;
    }
}
