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
        var buffer = new byte[1500];
        var send = new byte[DhcpMessage.MaxEmitLength];
        bool stop = false;
        _ = Task.Run(() => { Console.In.ReadToEnd(); stop = true; });
        Console.WriteLine("serving");
        Console.Out.Flush();
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(3);
        while (!stop && DateTime.UtcNow < deadline)
        {
            int n;
            try { n = socket.Receive(buffer); }
            catch (SocketException) { continue; }
            if (!DhcpMessage.TryParse(buffer.AsSpan(0, n), out var request, out _) || request.IsReply || request.ClientId is null) continue;
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
