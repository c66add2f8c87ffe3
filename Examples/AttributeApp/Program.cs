using System.Net;
using System.Net.Sockets;
using SockShim;

// The attribute opt-in. Under `sockshim run --mode attribute -- dotnet AttributeApp.dll HOST:PORT`,
// sockets created while a [NewAddressPerSocket] method runs - before and after its awaits, in
// methods it calls, in tasks it starts - each get their own address; every other socket keeps
// the host's. Each line says where a socket was made and which local address it had.
// --marked-first: the first socket the app makes is a marked one (no socket outside before it).
if (args.Length is not (1 or 2) || !IPEndPoint.TryParse(args[0], out var server) || server.Port == 0 || (args.Length == 2 && args[1] != "--marked-first"))
{
    Console.Error.WriteLine("usage: AttributeApp HOST:PORT [--marked-first] (an echo server, for example EchoServer --listen 127.0.0.1:7007)");
    return 2;
}
if (args.Length == 1) await Calls.Report("outside, before", server);
await Calls.Marked(server);
await new Voice(server).Call();
await Calls.Report("outside, after", server);
return 0;

internal static class Calls
{
    [NewAddressPerSocket]
    public static async Task Marked(IPEndPoint server)
    {
        await Report("marked, before an await", server);
        await Task.Yield();
        await Report("marked, after an await", server);
        await Nested(server);
        await Task.Run(() => Report("marked, in a task it started", server));
    }

    private static Task Nested(IPEndPoint server) => Report("marked, in a method it called", server);

    public static async Task Report(string where, IPEndPoint server)
    {
        using var socket = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(server);
        Console.WriteLine($"{where}: {((IPEndPoint)socket.LocalEndPoint!).Address}");
    }
}

/// <summary>Marked as a whole: each of its methods runs in an address scope.</summary>
[NewAddressPerSocket]
internal sealed class Voice(IPEndPoint server)
{
    public Task Call() => Calls.Report("marked class", server);
}
