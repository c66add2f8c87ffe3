using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using SockShim;

// VoIP-style: one signalling connection from the host's address, and per call a UDP media flow
// (RTP-sized packets) from the call's own address. Run it so calls get addresses from a pool
// marked EF, which an edge router can classify by address:
//   ./sockshim run --mode attribute --dscp EF -- dotnet VoipCalls.dll 127.0.0.1:7007 --calls 5
// Each call prints its media address; the DiffServ class its socket carries goes to stderr (it
// is the one thing that differs by design, and `sockshim compare` reads it off the wire).
if (args.Length < 1 || !IPEndPoint.TryParse(args[0], out var server) || server.Port == 0)
{
    Console.Error.WriteLine("usage: VoipCalls HOST:PORT [--calls N] [--packets N]  (HOST:PORT: an echo server for TCP and UDP, such as EchoServer)");
    return 2;
}
int calls = Option("--calls", 3), packets = Option("--packets", 20);
int Option(string name, int fallback) => Array.IndexOf(args, name) is int i and >= 0 && i + 1 < args.Length && int.TryParse(args[i + 1], out int v) ? v : fallback;

using (var signalling = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp))
{
    await signalling.ConnectAsync(server);
    await signalling.SendAsync(Encoding.ASCII.GetBytes($"REGISTER {calls} calls\n"));
    var buffer = new byte[256];
    await signalling.ReceiveAsync(buffer);
    Console.WriteLine($"signalling from {((IPEndPoint)signalling.LocalEndPoint!).Address}");
}
var results = await Task.WhenAll(Enumerable.Range(1, calls).Select(n => Media.Call(n, server, packets)));
foreach (var line in results) Console.WriteLine(line);
return 0;

internal static class Media
{
    /// <summary>One call's media flow. Marked: its socket gets the call's own address.</summary>
    [NewAddressPerSocket]
    public static async Task<string> Call(int call, IPEndPoint server, int packets)
    {
        using var rtp = new Socket(server.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        var packet = new byte[12 + 160]; // RTP header + 20 ms of G.711
        var echo = new byte[2048];
        int answered = 0;
        for (int seq = 0; seq < packets; seq++)
        {
            packet[0] = 0x80; // RTP version 2
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)seq);
            BinaryPrimitives.WriteUInt32BigEndian(packet.AsSpan(8), (uint)call); // SSRC
            await rtp.SendToAsync(packet, server);
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            try { await rtp.ReceiveFromAsync(echo, new IPEndPoint(IPAddress.Any, 0), wait.Token); answered++; }
            catch (OperationCanceledException) { }
        }
        int tos = (int)rtp.GetSocketOption(SocketOptionLevel.IP, SocketOptionName.TypeOfService)!;
        string dscp = (tos >> 2) switch { 46 => "EF", 0 => "best effort", int d => $"DSCP {d}" };
        Console.Error.WriteLine($"call {call}: class {dscp}");
        return $"call {call}: media from {((IPEndPoint)rtp.LocalEndPoint!).Address}, {answered}/{packets} packets answered";
    }
}
