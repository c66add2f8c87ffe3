using System.Net;
using System.Net.Sockets;

namespace SockShim.Tests.Shim;

/// <summary>A TCP listener and a UDP receiver on 127.0.0.1 that report the peer the kernel saw.</summary>
internal sealed class Peer : IDisposable
{
    private readonly Socket _tcp = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly Socket _udp = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);

    public Peer()
    {
        _tcp.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _tcp.Listen(1024);
        _udp.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _udp.ReceiveTimeout = 5000;
    }

    public IPEndPoint Tcp => (IPEndPoint)_tcp.LocalEndPoint!;
    public IPEndPoint Udp => (IPEndPoint)_udp.LocalEndPoint!;

    /// <summary>Accepts one connection and returns the source address and port it came from.</summary>
    public IPEndPoint AcceptOne()
    {
        using var conn = _tcp.AcceptAsync().WaitAsync(TimeSpan.FromSeconds(5)).GetAwaiter().GetResult();
        return (IPEndPoint)conn.RemoteEndPoint!;
    }

    public IPEndPoint ReceiveOne()
    {
        var buffer = new byte[64];
        EndPoint from = new IPEndPoint(IPAddress.Any, 0);
        _udp.ReceiveFrom(buffer, ref from);
        return (IPEndPoint)from;
    }

    public void Dispose()
    {
        _tcp.Dispose();
        _udp.Dispose();
    }
}
