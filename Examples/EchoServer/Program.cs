using System.CommandLine;
using System.Net;
using System.Net.Sockets;
using System.Text;

// An echo server that reports where each peer comes from: one line per connection or
// datagram, and at the end how many distinct source addresses it saw. It knows nothing of
// SockShim: what it prints is the kernel's view of the peer.
var listen = new Option<string>("--listen") { Description = "address:port to listen on (TCP and UDP); port 0 picks a free one", DefaultValueFactory = _ => "127.0.0.1:7007" };
var expect = new Option<int>("--expect") { Description = "exit after this many TCP connections and UDP datagrams have been served (0: run until --timeout)", DefaultValueFactory = _ => 0 };
var timeout = new Option<double>("--timeout") { Description = "exit after this many seconds", DefaultValueFactory = _ => 60 };
var readyFile = new Option<string?>("--ready-file") { Description = "write the bound address:port here once listening" };
var root = new RootCommand("Echo server that prints each peer's source address and counts distinct ones") { listen, expect, timeout, readyFile };
root.SetAction(async (parse, ct) =>
{
    if (!IPEndPoint.TryParse(parse.GetValue(listen)!, out var endpoint))
    {
        Console.Error.WriteLine($"error: --listen '{parse.GetValue(listen)}' is not address:port (example: 127.0.0.1:7007)");
        return 2;
    }
    int expected = parse.GetValue(expect);
    using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
    cts.CancelAfter(TimeSpan.FromSeconds(parse.GetValue(timeout)));

    using var tcp = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
    tcp.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
    tcp.Bind(endpoint);
    tcp.Listen(4096);
    var bound = (IPEndPoint)tcp.LocalEndPoint!;
    using var udp = new Socket(endpoint.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
    udp.Bind(bound);

    var sources = new HashSet<IPAddress>();
    int served = 0;
    var gate = new object();
    var done = new TaskCompletionSource();
    void Served(string kind, EndPoint peer, string said)
    {
        lock (gate)
        {
            sources.Add(((IPEndPoint)peer).Address);
            served++;
            Console.WriteLine($"{kind} peer {peer} said '{said}'");
            if (expected > 0 && served >= expected) done.TrySetResult();
        }
    }

    Console.WriteLine($"listening {bound}");
    if (parse.GetValue(readyFile) is { } f)
    {
        // Whole or not at all: a reader that sees the name must not read it half written. The
        // part file has a name nobody can guess and must be new (no link is followed into it).
        string part = $"{f}.{Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8))}.part";
        using (var stream = new FileStream(part, FileMode.CreateNew, FileAccess.Write))
            stream.Write(Encoding.UTF8.GetBytes(bound.ToString()));
        File.Move(part, f, overwrite: true);
    }

    async Task AcceptLoop()
    {
        while (!cts.IsCancellationRequested)
        {
            var conn = await tcp.AcceptAsync(cts.Token);
            _ = Task.Run(async () =>
            {
                using (conn)
                {
                    var buffer = new byte[2048];
                    int n = await conn.ReceiveAsync(buffer, cts.Token);
                    string said = Encoding.UTF8.GetString(buffer, 0, n);
                    string reply = $"you are {conn.RemoteEndPoint}";
                    // Enough HTTP for HttpClient: the same answer as the body of a response.
                    bool http = said.StartsWith("GET ");
                    await conn.SendAsync(Encoding.UTF8.GetBytes(http
                        ? $"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {reply.Length + 1}\r\nConnection: close\r\n\r\n{reply}\n"
                        : reply + "\n"), cts.Token);
                    Served(http ? "http" : "tcp", conn.RemoteEndPoint!, http ? said.Split("\r\n")[0] : said.TrimEnd('\n'));
                }
            });
        }
    }
    async Task UdpLoop()
    {
        var buffer = new byte[512];
        while (!cts.IsCancellationRequested)
        {
            var r = await udp.ReceiveFromAsync(buffer, new IPEndPoint(endpoint.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, 0), cts.Token);
            await udp.SendToAsync(Encoding.UTF8.GetBytes($"you are {r.RemoteEndPoint}\n"), r.RemoteEndPoint, cts.Token);
            Served("udp", r.RemoteEndPoint, Encoding.UTF8.GetString(buffer, 0, r.ReceivedBytes).TrimEnd('\n'));
        }
    }
    var loops = Task.WhenAll(AcceptLoop(), UdpLoop());
    await Task.WhenAny(done.Task, Task.Delay(Timeout.Infinite, cts.Token).ContinueWith(_ => { }));
    lock (gate) Console.WriteLine($"distinct source addresses: {sources.Count} in {served} served");
    return expected > 0 && served < expected ? 1 : 0;
});
return root.Parse(args).Invoke();
