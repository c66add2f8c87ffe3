using System.Net.Sockets;
using System.Runtime.CompilerServices;
using SockShim.Stack.Addressing;
using SockShim.Stack.Configuration;
using SockShim.Stack.Policy;
using SockShim.Stack.Pools;
using static SockShim.TupleFamilies;

namespace SockShim.Tests.Shim;

public class DisposeTests
{
    [Test]
    public void Dispose_and_Close_release_the_address_exactly_once()
    {
        using var t = new TestStack("127.101.40.0/29");
        var a = new TupleSocket(t.Stack, AF_INET_TUPLE, SocketType.Stream, ProtocolType.Tcp);
        var b = new TupleSocket(t.Stack, AF_INET_TUPLE, SocketType.Dgram, ProtocolType.Udp);
        Assert.That(t.HeldSlots(), Is.EqualTo(2));
        a.Dispose();
        a.Dispose();
        b.Close();
        Assert.That(t.HeldSlots(), Is.Zero);
        Assert.That(a.Lease!.IsReleased && b.Lease!.IsReleased, Is.True);
    }

    [Test]
    public void The_finalizer_releases_an_abandoned_socket()
    {
        using var t = new TestStack("127.101.41.0/29");
        Abandon(t);
        Assert.That(t.HeldSlots(), Is.EqualTo(3));
        for (int i = 0; i < 10 && t.HeldSlots() > 0; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        Assert.That(t.HeldSlots(), Is.Zero);
    }

    /// <summary>A TupleSocket (lazy: its address is taken at connect) disposed on one thread
    /// while another connects it: the address goes back whichever comes first. (A race: before
    /// the fix most of 1,500 rounds left their address held.)</summary>
    [Test]
    [CancelAfter(120_000)]
    public void A_lazy_tuple_socket_disposed_while_it_connects_gives_its_address_back()
    {
        using var t = new TestStack("127.101.43.0/24", allocation: AllocationTime.Lazy);
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        listener.Listen(256);
        var target = listener.LocalEndPoint!;
        var accepting = Task.Run(() => { try { while (true) listener.Accept().Dispose(); } catch (Exception ex) when (ex is SocketException or ObjectDisposedException) { } });
        using var barrier = new Barrier(2);
        for (int i = 0; i < 1500; i++)
        {
            var s = new TupleSocket(t.Stack, AF_INET_TUPLE, SocketType.Stream, ProtocolType.Tcp);
            var connect = Task.Run(() =>
            {
                barrier.SignalAndWait();
                try { s.Connect(target); } catch (Exception ex) when (ex is SocketException or ObjectDisposedException) { }
            });
            barrier.SignalAndWait();
            s.Dispose();
            Assert.That(connect.Wait(TimeSpan.FromSeconds(30)), Is.True, "the connect ended");
        }
        Assert.That(t.HeldSlots(), Is.Zero, "every disposed socket's address is back in the table");
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Abandon(TestStack t)
    {
        for (int i = 0; i < 3; i++) _ = new TupleSocket(t.Stack, AF_INET_TUPLE, SocketType.Stream, ProtocolType.Tcp);
    }

    [TestCase(AllocationTime.Eager)]
    [TestCase(AllocationTime.Lazy)]
    public void An_exhausted_pool_fails_with_AddressNotAvailable_naming_the_pool_and_leaks_nothing(AllocationTime allocation)
    {
        using var t = new TestStack("127.101.42.0/31", allocation: allocation, name: "tiny");
        using var peer = new Shim.Peer();
        var held = new[] { Open(), Open() };
        // Earlier tests' garbage (child-process pipes, sockets) is finalized first, so the count
        // moves only for what this loop opens.
        Settle();
        int fdsBefore = OpenDescriptors();
        for (int i = 0; i < 50; i++)
        {
            var ex = Assert.Throws<SocketException>(() =>
            {
                using var s = new TupleSocket(t.Stack, AF_INET_TUPLE, SocketType.Stream, ProtocolType.Tcp);
                s.Connect(peer.Tcp);
            })!;
            Assert.That(ex.SocketErrorCode, Is.EqualTo(SocketError.AddressNotAvailable));
            Assert.That(ex.Message, Does.Contain("pool 'tiny'").And.Contain("exhausted"));
        }
        Settle();
        Assert.That(OpenDescriptors(), Is.LessThanOrEqualTo(fdsBefore), "failed sockets are closed: 50 failures would leave 50 descriptors");
        Assert.That(t.HeldSlots(), Is.EqualTo(2));
        foreach (var s in held) s.Dispose();
        Assert.That(t.HeldSlots(), Is.Zero);
        using var again = Open();
        Assert.That(again.Lease, Is.Not.Null, "the pool serves again once sockets close");

        TupleSocket Open()
        {
            var s = new TupleSocket(t.Stack, AF_INET_TUPLE, SocketType.Stream, ProtocolType.Tcp);
            s.Connect(peer.Tcp);
            peer.AcceptOne();
            return s;
        }
    }

    private static int OpenDescriptors() => Directory.GetFiles("/proc/self/fd").Length;

    private static void Settle()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }
}
