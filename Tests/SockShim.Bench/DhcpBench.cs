using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using SockShim.Stack;
using SockShim.Stack.Claims;
using SockShim.Stack.Configuration;
using SockShim.Stack.Dhcp;
using SockShim.Stack.Errors;
using SockShim.Stack.Pools;
using SockShim.Stack.Sources;
using SockShim.Stack.Wire;

/// <summary>
/// Time per lease against one DHCP server, measured side by side in one run:
///   bare     : a minimal client doing DISCOVER/OFFER/REQUEST/ACK and nothing else (the floor);
///   pool     : SockShim's DHCP pool, one socket's lease at a time (exchange, journal, address on the NIC);
///   prefetch : the same pool with N leases kept ready, so a socket takes one without the server.
/// Each phase holds N leases, then releases them and waits until the server has them back.
/// </summary>
internal static class DhcpBench
{
    public static int Run(int n, string iface)
    {
        var mac = Convert.FromHexString(File.ReadAllText($"/sys/class/net/{iface}/address").Trim().Replace(":", ""));
        double bare = Bare(n, iface, mac);
        Settle();
        double pool = Pool(n, prefetch: 0, out _);
        Settle();
        Pool(n, prefetch: n, out double ready);
        Console.WriteLine($"dhcp bare exchange      {bare / 1000:F3} ms per lease (the floor: DISCOVER/OFFER/REQUEST/ACK only), {n} leases");
        Console.WriteLine($"dhcp pool, one by one   {pool / 1000:F3} ms per lease = {pool / bare:F2}x bare (target <= 1.20x: {(pool / bare <= 1.2 ? "MET" : "MISSED")})");
        Console.WriteLine($"dhcp pool, prefetched   {ready:F1} us per lease (target <= 50 us: {(ready <= 50 ? "MET" : "MISSED")})");
        return 0;
    }

    // dnsmasq frees released leases at once; a moment lets its lease file writes finish.
    private static void Settle() => Thread.Sleep(500);

    private static double Bare(int n, string iface, byte[] mac)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.Broadcast, true);
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        socket.SetRawSocketOption(1, 25 /* SO_BINDTODEVICE */, Encoding.ASCII.GetBytes(iface + "\0"));
        socket.Bind(new IPEndPoint(IPAddress.Any, DhcpMessage.ClientPort));
        socket.ReceiveTimeout = 2000;
        var broadcast = new IPEndPoint(IPAddress.Broadcast, DhcpMessage.ServerPort);
        var send = new byte[DhcpMessage.MaxEmitLength];
        var receive = new byte[2048];
        var held = new List<(IPAddress Address, IPAddress Server, byte[] Id)>();
        uint xid = (uint)Random.Shared.Next();
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < n; i++)
        {
            var id = ClientIdentifier.For(0x7000_0000u + (uint)i, mac);
            var request = new DhcpMessage { MessageType = DhcpMessageType.Discover, TransactionId = ++xid, Flags = DhcpMessage.BroadcastFlag, HardwareAddress = mac, ClientId = id };
            socket.SendTo(send.AsSpan(0, request.Emit(send)), SocketFlags.None, broadcast);
            var offer = Await(socket, receive, xid, DhcpMessageType.Offer);
            request.MessageType = DhcpMessageType.Request;
            request.RequestedAddress = offer.YourAddress;
            request.ServerId = offer.ServerId;
            socket.SendTo(send.AsSpan(0, request.Emit(send)), SocketFlags.None, broadcast);
            var ack = Await(socket, receive, xid, DhcpMessageType.Ack);
            held.Add((ack.YourAddress, ack.ServerId!, id));
        }
        double perLease = sw.Elapsed.TotalMicroseconds / n;
        foreach (var (address, server, id) in held)
        {
            var release = DhcpLeaseMachine.ReleaseMessage(++xid, address, server, id, mac);
            socket.SendTo(send.AsSpan(0, release.Emit(send)), SocketFlags.None, new IPEndPoint(server, DhcpMessage.ServerPort));
            Thread.Sleep(1);
        }
        return perLease;
    }

    private static DhcpMessage Await(Socket socket, byte[] buffer, uint xid, DhcpMessageType type)
    {
        while (true)
        {
            int got = socket.Receive(buffer);
            if (DhcpMessage.TryParse(buffer.AsSpan(0, got), out var m, out _) && m.IsReply && m.TransactionId == xid && m.MessageType == type) return m;
        }
    }

    private static double Pool(int n, int prefetch, out double readyMicroseconds)
    {
        var settings = SettingsLoader.Load(new Dictionary<string, string?> { [SettingsLoader.PrefetchKey] = prefetch.ToString() });
        using var stack = AddressStack.Create(settings);
        var pool = stack.Pools[0];
        var leases = new List<Lease>(n);
        if (prefetch > 0)
        {
            var until = Stopwatch.StartNew();
            while (pool.ReadyLeases < prefetch && until.Elapsed < TimeSpan.FromMinutes(2)) Thread.Sleep(10);
        }
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < n; i++)
        {
            if (!pool.TryAcquire("bench", out var lease, out var error)) throw new InvalidOperationException(error!.Message);
            leases.Add(lease);
        }
        double perLease = sw.Elapsed.TotalMicroseconds / n;
        readyMicroseconds = perLease;
        foreach (var lease in leases) lease.Release();
        return perLease;
    }
}
