using System.Net;
using System.Net.Sockets;
using SockShim.Stack.Addressing;
using SockShim.Stack.Configuration;
using SockShim.Stack.Policy;
using SockShim.Stack.Pools;
using static SockShim.TupleFamilies;

namespace SockShim.Tests.Shim;

public class BindTests
{
    [TestCase(AllocationTime.Eager, ProtocolType.Tcp)]
    [TestCase(AllocationTime.Lazy, ProtocolType.Tcp)]
    [TestCase(AllocationTime.Eager, ProtocolType.Udp)]
    [TestCase(AllocationTime.Lazy, ProtocolType.Udp)]
    public void A_wildcard_bind_keeps_the_port_and_fills_in_the_new_address(AllocationTime allocation, ProtocolType protocol)
    {
        using var t = new TestStack("127.101.30.0/28", allocation: allocation);
        using var peer = new Peer();
        using var s = new TupleSocket(t.Stack, AF_INET_TUPLE, protocol == ProtocolType.Tcp ? SocketType.Stream : SocketType.Dgram, protocol);
        int port = BindToSomeFreePort(s);
        Assert.That(s.LocalEndPoint, Is.EqualTo(new IPEndPoint(s.Lease!.Address, port)));

        IPEndPoint seen;
        if (protocol == ProtocolType.Tcp)
        {
            s.Connect(peer.Tcp);
            seen = peer.AcceptOne();
        }
        else
        {
            s.SendTo("x"u8.ToArray(), peer.Udp);
            seen = peer.ReceiveOne();
        }
        Assert.That(seen, Is.EqualTo(new IPEndPoint(s.Lease.Address, port)), "the server sees the new address with the port asked for");
    }

    /// <summary>At the .NET edge SockShim's own bind and connect fail with the SocketError a
    /// plain Socket gets for the same call.</summary>
    [Test]
    public void Its_own_bind_and_connect_fail_as_a_plain_socket_does()
    {
        using var t = new TestStack("127.101.32.0/28");
        using var s = new TupleSocket(t.Stack, AF_INET_TUPLE, SocketType.Stream, ProtocolType.Tcp);
        using var holder = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        holder.Bind(new IPEndPoint(s.Lease!.Address, 0));
        holder.Listen(); // .NET binds TCP with SO_REUSEADDR: only a listener holds the port against it
        int taken = ((IPEndPoint)holder.LocalEndPoint!).Port;
        using var rival = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var plain = Assert.Throws<SocketException>(() => rival.Bind(new IPEndPoint(s.Lease.Address, taken)))!;
        var ours = Assert.Throws<SocketException>(() => s.Bind(new IPEndPoint(IPAddress.Any, taken)))!;
        Assert.That(ours.SocketErrorCode, Is.EqualTo(plain.SocketErrorCode).And.EqualTo(SocketError.AddressAlreadyInUse));

        // Bound, not listening: the kernel refuses the connect.
        using var refusing = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        refusing.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        using var lazy = new TupleSocket(t.Stack, AF_INET_TUPLE, SocketType.Stream, ProtocolType.Tcp, SocketTuple.New with { Allocation = AllocationTime.Lazy });
        using var plainClient = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var plainRefused = Assert.Throws<SocketException>(() => plainClient.Connect(refusing.LocalEndPoint!))!;
        var ourRefused = Assert.Throws<SocketException>(() => lazy.Connect(refusing.LocalEndPoint!))!;
        Assert.That(ourRefused.SocketErrorCode, Is.EqualTo(plainRefused.SocketErrorCode).And.EqualTo(SocketError.ConnectionRefused));
        Assert.That(lazy.Lease, Is.Not.Null, "the refused connect went out from the socket's own address");
        Assert.That(((IPEndPoint)lazy.LocalEndPoint!).Address, Is.EqualTo(lazy.Lease!.Address), "bound to it before the connect");
    }

    [Test]
    public void A_tuple_listener_accepts_on_its_own_address()
    {
        using var t = new TestStack("127.101.31.0/28");
        using var listener = new TupleSocket(t.Stack, AF_INET_TUPLE, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Any, 0));
        listener.Listen();
        var local = (IPEndPoint)listener.LocalEndPoint!;
        Assert.That(local.Address, Is.EqualTo(listener.Lease!.Address));
        Assert.That(local.Port, Is.Not.Zero);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        client.Connect(local);
        Assert.That(client.RemoteEndPoint, Is.EqualTo(local));
    }

    [Test]
    public void A_bind_to_a_specific_address_is_left_alone_and_the_address_goes_back()
    {
        using var t = new TestStack("127.101.32.0/28");
        using var s = new TupleSocket(t.Stack, AF_INET_TUPLE, SocketType.Stream, ProtocolType.Tcp);
        Assert.That(t.HeldSlots(), Is.EqualTo(1));
        s.Bind(new IPEndPoint(IPAddress.Parse("127.0.0.7"), 0));
        Assert.That(((IPEndPoint)s.LocalEndPoint!).Address, Is.EqualTo(IPAddress.Parse("127.0.0.7")));
        Assert.That(s.Lease, Is.Null);
        Assert.That(t.HeldSlots(), Is.Zero);
    }

    private static int BindToSomeFreePort(TupleSocket s)
    {
        for (int attempt = 0; attempt < 20; attempt++)
        {
            int port = Random.Shared.Next(20_000, 32_000);
            try
            {
                s.Bind(new IPEndPoint(IPAddress.Any, port));
                return port;
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse) { }
        }
        Assert.Fail("no free port in 20 tries");
        return 0;
    }
}
