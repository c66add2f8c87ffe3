using System.Net;
using System.Net.Sockets;
using System.Text;
using SockShim;

/// <summary>attempt-sockets SECONDS SERVER: opens AF_INET_TUPLE UDP sockets one after another for
/// SECONDS, each sending a datagram to SERVER, whether or not the last got an address: prints
/// "socket &lt;local&gt; lease-expires &lt;time&gt;" or "error &lt;SocketError&gt; &lt;message&gt;" for each, then
/// "done"; closes them when stdin closes. A pool whose server's leases are refused keeps asking
/// for as long as this runs.</summary>
internal static class SocketAttempts
{
    public static int Run(double seconds, IPEndPoint server)
    {
        var held = new List<Socket>();
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(seconds);
        while (DateTime.UtcNow < until)
        {
            TupleSocket? s = null;
            try
            {
                // The lease is taken when the socket is made: that is where a refusal shows.
                s = new TupleSocket(TupleFamilies.AF_INET_TUPLE, SocketType.Dgram, ProtocolType.Udp);
                s.SendTo(Encoding.ASCII.GetBytes("hello\n"), server);
                held.Add(s);
                Console.WriteLine($"socket {s.LocalEndPoint} lease-expires {s.Lease?.ExpiresAt?.ToString("O") ?? "unknown"}");
            }
            catch (SocketException ex)
            {
                s?.Dispose();
                Console.WriteLine($"error {ex.SocketErrorCode} {ex.Message}");
            }
            Console.Out.Flush();
        }
        Console.WriteLine("done");
        Console.Out.Flush();
        Console.In.ReadToEnd();
        foreach (var s in held) s.Dispose();
        return 0;
    }
}
