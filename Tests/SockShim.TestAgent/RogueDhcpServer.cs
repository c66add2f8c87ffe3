using System.Net;
using System.Net.Sockets;
using System.Text;
using SockShim.Stack.Wire;

/// <summary>
/// A rogue DHCP server that answers every DISCOVER at once with one bad address: OFFER names
/// SERVERID, carries MASK (option 1) and ROUTER (option 3), lease 600 s. A REQUEST naming its
/// server id is ACKed with the same; one naming another server is left to that server, as a
/// real server does. Prints "serving", then "offered ADDRESS xid X" and "acked ADDRESS xid X";
/// when stdin closes, "offers N acks M".
/// </summary>
internal static class RogueDhcpServer
{
    public static int Run(string device, IPAddress serverId, IPAddress offer, IPAddress mask, IPAddress router)
    {
        using var socket = FakeDhcpServer.ServerSocket(device);
        var broadcast = new IPEndPoint(IPAddress.Broadcast, DhcpMessage.ClientPort);
        var send = new byte[DhcpMessage.MaxEmitLength];
        int offers = 0, acks = 0;
        foreach (var request in FakeDhcpServer.ClientRequests(socket, TimeSpan.FromMinutes(5)))
        {
            DhcpMessageType type;
            if (request.MessageType == DhcpMessageType.Discover) type = DhcpMessageType.Offer;
            else if (request.MessageType == DhcpMessageType.Request && serverId.Equals(request.ServerId)) type = DhcpMessageType.Ack;
            else continue;
            var reply = FakeDhcpServer.Reply(request, type, offer, serverId, mask, [router]);
            int len = reply.Emit(send);
            socket.SendTo(send.AsSpan(0, len), SocketFlags.None, broadcast);
            if (type == DhcpMessageType.Offer) offers++; else acks++;
            Console.WriteLine($"{(type == DhcpMessageType.Offer ? "offered" : "acked")} {offer} xid {request.TransactionId:x8}");
            Console.Out.Flush();
        }
        Console.WriteLine($"offers {offers} acks {acks}");
        return 0;
    }
}
