using System.Net;
using System.Net.Sockets;
using System.Text;
using SockShim;

/// <summary>Tuple sockets held open until the test says what to do with them.</summary>
internal static class TupleSockets
{
    public static int Run(int count, IPEndPoint server, bool udp)
    {
        var sockets = new List<TupleSocket>();
        var family = server.AddressFamily == AddressFamily.InterNetwork ? TupleFamilies.AF_INET_TUPLE : TupleFamilies.AF_INET6_TUPLE;
        try
        {
            for (int i = 0; i < count; i++)
            {
                var s = udp ? new TupleSocket(family, SocketType.Dgram, ProtocolType.Udp) : new TupleSocket(family, SocketType.Stream, ProtocolType.Tcp);
                sockets.Add(s);
                if (udp) s.SendTo(Encoding.ASCII.GetBytes("hello\n"), server);
                else s.Connect(server);
                Console.WriteLine($"socket {s.LocalEndPoint} lease-expires {s.Lease?.ExpiresAt?.ToString("O") ?? "never"}");
            }
        }
        catch (SocketException ex)
        {
            Console.WriteLine($"error {ex.SocketErrorCode} {ex.Message}");
            return 1;
        }
        Console.WriteLine("held");
        Console.Out.Flush();
        string? line;
        while ((line = Console.ReadLine()) is not null)
        {
            if (line == "close") break;
            if (line != "use") continue;
            foreach (var s in sockets)
            {
                string name = s.Lease?.Address?.ToString() ?? "?";
                try
                {
                    if (udp) s.SendTo(Encoding.ASCII.GetBytes("again\n"), server);
                    else s.Send(Encoding.ASCII.GetBytes("again\n"));
                    Console.WriteLine($"ok {name}");
                }
                catch (SocketException ex) { Console.WriteLine($"error {name} {ex.SocketErrorCode} {ex.Message}"); }
                catch (ObjectDisposedException ex) { Console.WriteLine($"disposed {name} {ex.Message}"); }
            }
            Console.WriteLine("used");
            Console.Out.Flush();
        }
        foreach (var s in sockets) s.Dispose();
        Console.WriteLine("closed");
        return 0;
    }
}
