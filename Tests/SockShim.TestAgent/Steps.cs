using System.Net;
using System.Net.Sockets;

/// <summary>
/// steps N SERVER: for a run under the launcher, watched from outside (dotnet-counters). Prints
/// "pid P", then obeys stdin: "open" makes N ordinary TCP connections to SERVER and prints
/// "opened"; "close" closes them and prints "closed"; end of input exits.
/// </summary>
internal static class Steps
{
    public static int Run(int count, IPEndPoint server)
    {
        Console.WriteLine($"pid {Environment.ProcessId}");
        var sockets = new List<Socket>();
        string? line;
        while ((line = Console.ReadLine()) is not null)
        {
            switch (line)
            {
                case "open":
                    for (int i = 0; i < count; i++)
                    {
                        var s = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                        s.Connect(server);
                        sockets.Add(s);
                    }
                    Console.WriteLine($"opened {string.Join(' ', sockets.Select(s => ((IPEndPoint)s.LocalEndPoint!).Address))}");
                    break;
                case "close":
                    foreach (var s in sockets) s.Dispose();
                    sockets.Clear();
                    Console.WriteLine("closed");
                    break;
            }
        }
        return 0;
    }
}
