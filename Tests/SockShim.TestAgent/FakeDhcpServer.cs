using System.Net;
using System.Net.Sockets;
using System.Text;
using SockShim.Stack.Wire;

/// <summary>
/// A hostile DHCP server for the client's robustness test: before each answer it broadcasts
/// garbage, a truncated reply and a reply for another client; it NAKs the first REQUEST of every
/// client identifier and drops a share of its OFFERs and ACKs. Otherwise it leases addresses
/// from BASE upwards. Stops when stdin closes and prints what it did.
/// </summary>
internal static class FakeDhcpServer
{
    public static int Run(string device, IPAddress serverId, IPAddress first, int dropPercent)
    {
        using var socket = FakeDhcpServer.ServerSocket(device);
        var random = new Random(7);
        var leases = new Dictionary<string, IPAddress>();
        var nakked = new HashSet<string>();
        uint next = BitConverter.ToUInt32(first.GetAddressBytes().Reverse().ToArray());
        int naks = 0, dropped = 0, junk = 0, acks = 0, releases = 0;
        var broadcast = new IPEndPoint(IPAddress.Broadcast, DhcpMessage.ClientPort);
        var send = new byte[DhcpMessage.MaxEmitLength];
        foreach (var request in ClientRequests(socket, TimeSpan.FromMinutes(3)))
        {
            if (request.ClientId is null) continue;
            string client = Convert.ToHexString(request.ClientId);

            // Noise first: random bytes, a reply cut short, and a well-formed reply for someone else.
            var noise = new byte[random.Next(1, 600)];
            random.NextBytes(noise);
            socket.SendTo(noise, broadcast);
            var foreign = Reply(request, DhcpMessageType.Offer, IPAddress.Parse("198.51.100.1"), serverId);
            foreign.ClientId = [0, 1, 2, 3];
            int len = foreign.Emit(send);
            socket.SendTo(send.AsSpan(0, len / 2), SocketFlags.None, broadcast);
            socket.SendTo(send.AsSpan(0, len), SocketFlags.None, broadcast);
            junk += 3;

            DhcpMessage? answer = null;
            switch (request.MessageType)
            {
                case DhcpMessageType.Discover:
                    if (!leases.TryGetValue(client, out var offered))
                    {
                        var b = BitConverter.GetBytes(next++).Reverse().ToArray();
                        leases[client] = offered = new IPAddress(b);
                    }
                    answer = Reply(request, DhcpMessageType.Offer, offered, serverId);
                    break;
                case DhcpMessageType.Request:
                    if (nakked.Add(client))
                    {
                        answer = Reply(request, DhcpMessageType.Nak, IPAddress.Any, serverId);
                        answer.LeaseSeconds = null;
                        answer.Text = "try again";
                        naks++;
                    }
                    else if (leases.TryGetValue(client, out var held))
                    {
                        answer = Reply(request, DhcpMessageType.Ack, held, serverId);
                        acks++;
                    }
                    break;
                case DhcpMessageType.Release:
                    releases++;
                    break;
            }
            if (answer is null) continue;
            if (answer.MessageType != DhcpMessageType.Nak && random.Next(100) < dropPercent)
            {
                dropped++;
                if (answer.MessageType == DhcpMessageType.Ack) acks--;
                continue;
            }
            len = answer.Emit(send);
            socket.SendTo(send.AsSpan(0, len), SocketFlags.None, broadcast);
        }
        Console.WriteLine($"naks {naks} dropped {dropped} junk {junk} acks {acks} releases {releases}");
        return 0;
    }

    /// <summary>Prints "serving", then yields each client message that parses (not a reply) until
    /// stdin closes or <paramref name="limit"/> passes; the socket's receive timeout wakes it to look.</summary>
    internal static IEnumerable<DhcpMessage> ClientRequests(Socket socket, TimeSpan limit)
    {
        var buffer = new byte[1500];
        bool stop = false;
        _ = Task.Run(() => { Console.In.ReadToEnd(); stop = true; });
        Console.WriteLine("serving");
        Console.Out.Flush();
        var deadline = DateTime.UtcNow + limit;
        while (!stop && DateTime.UtcNow < deadline)
        {
            int n;
            try { n = socket.Receive(buffer); }
            catch (SocketException) { continue; }
            if (DhcpMessage.TryParse(buffer.AsSpan(0, n), out var request, out _) && !request.IsReply) yield return request;
        }
    }

    /// <summary>A DHCP server's socket on <paramref name="device"/>: port 67, broadcasts allowed,
    /// receives that time out every 200 ms so the server can notice it should stop.</summary>
    internal static Socket ServerSocket(string device)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.Broadcast, true);
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        socket.SetRawSocketOption(1 /* SOL_SOCKET */, 25 /* SO_BINDTODEVICE */, Encoding.ASCII.GetBytes(device + "\0"));
        socket.Bind(new IPEndPoint(IPAddress.Any, DhcpMessage.ServerPort));
        socket.ReceiveTimeout = 200;
        return socket;
    }

    /// <summary>A server's reply to <paramref name="request"/> (a /24 unless another mask is given).</summary>
    internal static DhcpMessage Reply(DhcpMessage request, DhcpMessageType type, IPAddress yiaddr, IPAddress serverId, IPAddress? mask = null, IPAddress[]? routers = null) => new()
    {
        Op = 2,
        MessageType = type,
        TransactionId = request.TransactionId,
        Flags = request.Flags,
        YourAddress = yiaddr,
        HardwareAddress = request.HardwareAddress,
        ClientId = request.ClientId,
        ServerId = serverId,
        LeaseSeconds = 600,
        SubnetMask = mask ?? IPAddress.Parse("255.255.255.0"),
        Routers = routers,
    };
}
