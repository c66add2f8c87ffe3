using System.Net;
using System.Net.Sockets;
using SockShim.Stack.Addressing;
using SockShim.Stack.Configuration;
using SockShim.Stack.Policy;
using SockShim.Stack.Pools;
using static SockShim.TupleFamilies;

namespace SockShim.Tests.Shim;

public class ConnectTests
{
    [TestCase(AllocationTime.Eager)]
    [TestCase(AllocationTime.Lazy)]
    public void A_tcp_tuple_socket_connects_from_its_own_address_and_reports_what_the_server_sees(AllocationTime allocation)
    {
        using var t = new TestStack("127.101.20.0/28", allocation: allocation);
        using var peer = new Peer();
        using var s = new TupleSocket(t.Stack, AF_INET_TUPLE, SocketType.Stream, ProtocolType.Tcp);
        Assert.That(s.AddressFamily, Is.EqualTo(AddressFamily.InterNetwork), "a real IPv4 socket");
        if (allocation == AllocationTime.Eager)
        {
            Assert.That(s.Lease, Is.Not.Null, "eager: taken at socket()");
            Assert.That(((IPEndPoint)s.LocalEndPoint!).Address, Is.EqualTo(s.Lease!.Address), "bound at socket(), port deferred");
        }
        else Assert.That(s.Lease, Is.Null, "lazy: nothing taken before connect");

        s.Connect(peer.Tcp);
        var seen = peer.AcceptOne();
        Assert.That(s.Lease, Is.Not.Null);
        Assert.That(t.Pool.Definition.Contains(seen.Address), Is.True, $"{seen} is from the pool");
        Assert.That(seen.Address, Is.EqualTo(s.Lease!.Address));
        Assert.That(s.LocalEndPoint, Is.EqualTo(seen), "getsockname equals the server's view, port included");
        Assert.That(seen.Port, Is.Not.Zero);
    }

    [Test]
    public async Task Async_connects_and_many_sockets_each_get_a_distinct_address()
    {
        using var t = new TestStack("127.101.21.0/26", allocation: AllocationTime.Lazy);
        using var peer = new Peer();
        var sockets = new List<TupleSocket>();
        var seen = new List<IPEndPoint>();
        try
        {
            for (int i = 0; i < 20; i++)
            {
                var s = new TupleSocket(t.Stack, AF_INET_TUPLE, SocketType.Stream, ProtocolType.Tcp);
                sockets.Add(s);
                _ = s.LocalEndPoint; // read before connect: must not go stale
                await s.ConnectAsync(peer.Tcp, CancellationToken.None);
                seen.Add(peer.AcceptOne());
                Assert.That(s.LocalEndPoint, Is.EqualTo(seen[^1]));
            }
            Assert.That(seen.Select(e => e.Address).Distinct().Count(), Is.EqualTo(20));
            Assert.That(t.HeldSlots(), Is.EqualTo(20));
        }
        finally { sockets.ForEach(s => s.Dispose()); }
        Assert.That(t.HeldSlots(), Is.Zero);
    }

    /// <summary>The binder reuses a thread's last reason string for the next connection to the
    /// same destination: an app that changes the endpoint object it passed must still see each
    /// lease say where its socket went.</summary>
    [Test, CancelAfter(30_000)]
    public void Each_lease_names_its_own_destination_when_the_app_reuses_one_endpoint_object()
    {
        using var t = new TestStack("127.101.24.0/28", allocation: AllocationTime.Lazy);
        using var first = new Peer();
        using var second = new Peer();
        var target = new IPEndPoint(first.Tcp.Address, first.Tcp.Port);
        using var a = new TupleSocket(t.Stack, AF_INET_TUPLE, SocketType.Stream, ProtocolType.Tcp);
        a.Connect(target);
        first.AcceptOne();
        using var b = new TupleSocket(t.Stack, AF_INET_TUPLE, SocketType.Stream, ProtocolType.Tcp);
        b.Connect(target);
        first.AcceptOne();
        target.Port = second.Tcp.Port;
        using var c = new TupleSocket(t.Stack, AF_INET_TUPLE, SocketType.Stream, ProtocolType.Tcp);
        c.Connect(target);
        second.AcceptOne();
        Assert.That(new[] { a.Lease!.Reason, b.Lease!.Reason, c.Lease!.Reason },
            Is.EqualTo(new[] { $"connect to {first.Tcp}", $"connect to {first.Tcp}", $"connect to {second.Tcp}" }));
    }

    [TestCase(AllocationTime.Eager)]
    [TestCase(AllocationTime.Lazy)]
    public void A_udp_tuple_socket_sends_from_its_own_address(AllocationTime allocation)
    {
        using var t = new TestStack("127.101.22.0/28", allocation: allocation);
        using var peer = new Peer();
        using var s = new TupleSocket(t.Stack, AF_INET_TUPLE, SocketType.Dgram, ProtocolType.Udp);
        Assert.That(s.Lease is null, Is.EqualTo(allocation == AllocationTime.Lazy));
        s.SendTo("hello"u8.ToArray(), peer.Udp);
        var seen = peer.ReceiveOne();
        Assert.That(seen.Address, Is.EqualTo(s.Lease!.Address));
        Assert.That(s.LocalEndPoint, Is.EqualTo(seen));
    }

    [Test]
    public void A_default_tuple_socket_keeps_the_common_address()
    {
        using var t = new TestStack("127.101.23.0/28");
        using var peer = new Peer();
        using var s = new TupleSocket(t.Stack, AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.Connect(peer.Tcp);
        Assert.That(peer.AcceptOne().Address, Is.EqualTo(IPAddress.Loopback));
        Assert.That(s.Lease, Is.Null);
        Assert.That(t.HeldSlots(), Is.Zero);
    }

    [Test]
    public void A_named_pool_is_used_when_the_tuple_names_it()
    {
        using var t = new TestStack("127.101.24.0/28", name: "voice");
        using var peer = new Peer();
        using var s = new TupleSocket(t.Stack, AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp, SocketTuple.FromPool("voice"));
        s.Connect(peer.Tcp);
        Assert.That(peer.AcceptOne().Address, Is.EqualTo(s.Lease!.Address));
        Assert.That(s.Lease.PoolName, Is.EqualTo("voice"));

        var ex = Assert.Throws<SocketException>(() => new TupleSocket(t.Stack, AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp, SocketTuple.FromPool("video")))!;
        Assert.That(ex.SocketErrorCode, Is.EqualTo(SocketError.InvalidArgument));
        Assert.That(ex.Message, Does.Contain("'video'").And.Contain("voice"));
    }

    [Test]
    public void A_loopback_address_cannot_reach_another_host_and_says_so_before_any_packet()
    {
        using var t = new TestStack("127.101.25.0/28");
        using var s = new TupleSocket(t.Stack, AF_INET_TUPLE, SocketType.Stream, ProtocolType.Tcp);
        var ex = Assert.Throws<SocketException>(() => s.Connect(new IPEndPoint(IPAddress.Parse("192.0.2.1"), 80)))!;
        Assert.That(ex.SocketErrorCode, Is.EqualTo(SocketError.NetworkUnreachable));
        Assert.That(ex.Message, Does.Contain("pool 'test'").And.Contain("192.0.2.1"));
    }

    [Test]
    public void An_ipv6_tuple_socket_without_an_ipv6_pool_is_refused_naming_the_pools()
    {
        using var t = new TestStack("127.101.26.0/28");
        var ex = Assert.Throws<SocketException>(() => new TupleSocket(t.Stack, AF_INET6_TUPLE, SocketType.Stream, ProtocolType.Tcp))!;
        Assert.That(ex.SocketErrorCode, Is.EqualTo(SocketError.AddressFamilyNotSupported));
        Assert.That(ex.Message, Does.Contain("no configured pool serves IPv6").And.Contain("127.101.26.0/28"));
    }
}
