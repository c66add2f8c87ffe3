using System.Net;
using System.Net.Sockets;
using System.Text;
using SockShim;

/// <summary>Sockets held open until the test says what to do with them.</summary>
internal static class TupleSockets
{
    public static int Run(int count, IPEndPoint server, bool udp, bool plain)
    {
        // SockShim's counters as an outside reader sees them, printed when the test says close.
        var totals = new System.Collections.Concurrent.ConcurrentDictionary<string, long>();
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) => { if (instrument.Meter.Name == "SockShim") l.EnableMeasurementEvents(instrument); };
        listener.SetMeasurementEventCallback<long>((instrument, value, _, _) => totals.AddOrUpdate(instrument.Name, value, (_, v) => v + value));
        listener.Start();
        var sockets = new List<(Socket Socket, string Local)>();
        var family = plain ? server.AddressFamily
            : server.AddressFamily == AddressFamily.InterNetwork ? TupleFamilies.AF_INET_TUPLE : TupleFamilies.AF_INET6_TUPLE;
        try
        {
            for (int i = 0; i < count; i++)
            {
                Socket s = plain ? new Socket(family, udp ? SocketType.Dgram : SocketType.Stream, udp ? ProtocolType.Udp : ProtocolType.Tcp)
                    : udp ? new TupleSocket(family, SocketType.Dgram, ProtocolType.Udp) : new TupleSocket(family, SocketType.Stream, ProtocolType.Tcp);
                if (udp) s.SendTo(Encoding.ASCII.GetBytes("hello\n"), server);
                else s.Connect(server);
                string local = ((IPEndPoint)s.LocalEndPoint!).Address.ToString();
                sockets.Add((s, local));
                Console.WriteLine($"socket {s.LocalEndPoint} lease-expires {(s as TupleSocket)?.Lease?.ExpiresAt?.ToString("O") ?? "unknown"}");
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
            foreach (var (s, local) in sockets)
            {
                try
                {
                    if (udp) s.SendTo(Encoding.ASCII.GetBytes("again\n"), server);
                    else s.Send(Encoding.ASCII.GetBytes("again\n"));
                    Console.WriteLine($"ok {local}");
                }
                catch (SocketException ex) { Console.WriteLine($"error {local} {ex.SocketErrorCode} {ex.Message}"); }
                catch (ObjectDisposedException) { Console.WriteLine($"disposed {local} {(s as TupleSocket)?.Lease?.LostReason}"); }
            }
            Console.WriteLine("used");
            Console.Out.Flush();
        }
        foreach (var (s, _) in sockets) s.Dispose();
        foreach (var (name, value) in totals.OrderBy(t => t.Key)) Console.WriteLine($"metric {name} {value}");
        Console.WriteLine("closed");
        return 0;
    }
}
