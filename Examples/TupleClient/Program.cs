using System.CommandLine;
using System.Net;
using System.Net.Sockets;
using System.Text;
using SockShim;
using SockShim.Stack.Configuration;
using static SockShim.TupleFamilies;

// Opens N connections (or sends N datagrams), each from a socket asked for with
// AF_INET_TUPLE, so each has its own address from the pool. All N are open at once, then
// each says which local address it thinks it has and reads back what the server saw.
var server = new Option<string>("--server") { Description = "echo server address:port", DefaultValueFactory = _ => "127.0.0.1:7007" };
var count = new Option<int>("--count") { Description = "how many sockets", DefaultValueFactory = _ => 10 };
var udp = new Option<bool>("--udp") { Description = "UDP datagrams instead of TCP connections" };
var root = new RootCommand("Client whose every socket has its own address (AF_INET_TUPLE)") { server, count, udp };
root.SetAction(async parse =>
{
    if (!IPEndPoint.TryParse(parse.GetValue(server)!, out var target) || target.Port == 0)
    {
        Console.Error.WriteLine($"error: --server '{parse.GetValue(server)}' is not address:port (example: 127.0.0.1:7007)");
        return 2;
    }
    int n = parse.GetValue(count);
    if (n is < 1 or > 15_000)
    {
        Console.Error.WriteLine($"error: --count {n} must be from 1 to 15000 (one process holds at most 20,000 descriptors here)");
        return 2;
    }
    try
    {
        var family = target.AddressFamily == AddressFamily.InterNetwork ? AF_INET_TUPLE : AF_INET6_TUPLE;
        var sockets = new List<TupleSocket>();
        int mismatches = 0;
        try
        {
            for (int i = 0; i < n; i++)
            {
                var s = parse.GetValue(udp)
                    ? new TupleSocket(family, SocketType.Dgram, ProtocolType.Udp)
                    : new TupleSocket(family, SocketType.Stream, ProtocolType.Tcp);
                sockets.Add(s);
                if (!parse.GetValue(udp)) await s.ConnectAsync(target);
            }
            foreach (var s in sockets)
            {
                var buffer = new byte[256];
                string reply;
                if (parse.GetValue(udp))
                {
                    // The port of a datagram socket is picked by its first send.
                    s.SendTo(Encoding.UTF8.GetBytes("hello\n"), target);
                    int got = s.Receive(buffer);
                    reply = Encoding.UTF8.GetString(buffer, 0, got).Trim();
                }
                else
                {
                    s.Send(Encoding.UTF8.GetBytes($"I am {s.LocalEndPoint}\n"));
                    int got = s.Receive(buffer);
                    reply = Encoding.UTF8.GetString(buffer, 0, got).Trim();
                }
                bool same = reply == $"you are {s.LocalEndPoint}";
                if (!same) mismatches++;
                Console.WriteLine($"local {s.LocalEndPoint} server says '{reply}'{(same ? "" : " MISMATCH")}");
            }
        }
        finally
        {
            foreach (var s in sockets) s.Dispose();
        }
        Console.WriteLine($"{n} sockets, {mismatches} mismatches");
        return mismatches == 0 ? 0 : 1;
    }
    catch (ConfigurationException ex)
    {
        Console.Error.WriteLine(ex.Message);
        return 2;
    }
    catch (SocketException ex)
    {
        Console.Error.WriteLine($"error: {ex.SocketErrorCode}: {ex.Message}"); if (Environment.GetEnvironmentVariable("SOCKSHIM_DEBUG") is not null) Console.Error.WriteLine(ex);
        return 1;
    }
});
return root.Parse(args).Invoke();
