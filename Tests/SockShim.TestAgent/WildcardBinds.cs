using System.Net;
using System.Net.Sockets;
using System.Text;

/// <summary>wildcard SERVER: ordinary sockets that bind the wildcard, as an unmodified app makes
/// them (run it under the launcher). A client, <c>new UdpClient(0)</c>, sends to SERVER and prints
/// "client LOCAL seen PEER" (PEER: what the server says it saw). A listener on 0.0.0.0:port
/// prints "listener LOCAL", then "listener received FROM" when a datagram sent to
/// 127.0.0.1:port reaches it, or "listener nothing" after 3 s.</summary>
internal static class WildcardBinds
{
    public static int Run(IPEndPoint server)
    {
        using (var client = new UdpClient(0))
        {
            client.Send(Encoding.ASCII.GetBytes("wildcard client\n"), server);
            client.Client.ReceiveTimeout = 10_000;
            var from = new IPEndPoint(IPAddress.Any, 0);
            string seen = Encoding.ASCII.GetString(client.Receive(ref from)).Trim().Replace("you are ", "");
            Console.WriteLine($"client {client.Client.LocalEndPoint} seen {seen}");
        }
        using var listener = new UdpClient(new IPEndPoint(IPAddress.Any, 0));
        var local = (IPEndPoint)listener.Client.LocalEndPoint!;
        Console.WriteLine($"listener {local}");
        using (var sender = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp))
            sender.SendTo("to the listener\n"u8, new IPEndPoint(IPAddress.Loopback, local.Port));
        listener.Client.ReceiveTimeout = 3_000;
        try
        {
            var sender = new IPEndPoint(IPAddress.Any, 0);
            listener.Receive(ref sender);
            Console.WriteLine($"listener received {sender}");
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.TimedOut) { Console.WriteLine("listener nothing"); }
        return 0;
    }
}
