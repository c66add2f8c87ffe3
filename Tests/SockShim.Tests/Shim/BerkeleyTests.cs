using System.Net;
using SockShim.Stack.Addressing;
using SockShim.Stack.Configuration;
using SockShim.Stack.Policy;
using SockShim.Stack.Pools;
using Tmds.Linux;
using static SockShim.Berkeley;
using LibC = Tmds.Linux.LibC;

namespace SockShim.Tests.Shim;

/// <summary>The modified Berkeley calls, one by one, against a listener the kernel reports on.</summary>
[NonParallelizable]
public unsafe class BerkeleyTests
{
    private TestStack _t = null!;
    private int _listener = -1;
    private IPEndPoint _server = null!;

    private void UsePool(AllocationTime allocation, string ranges = "127.104.0.0/28", string name = "berkeley")
    {
        _t?.Dispose();
        _t = new TestStack(ranges, allocation: allocation, name: name);
        SockShimRuntime.Use(_t.Stack);
    }

    [SetUp]
    public void SetUp()
    {
        UsePool(AllocationTime.Eager);
        _listener = LibC.socket(LibC.AF_INET, LibC.SOCK_STREAM, 0);
        Assert.That(Bind(_listener, new IPEndPoint(IPAddress.Loopback, 0), LibC.bind), Is.Zero);
        Assert.That(LibC.listen(_listener, 64), Is.Zero);
        _server = Name(_listener, LibC.getsockname)!;
        var udp = LibC.socket(LibC.AF_INET, LibC.SOCK_DGRAM, 0);
        _udp = udp;
        Assert.That(Bind(udp, new IPEndPoint(IPAddress.Loopback, 0), LibC.bind), Is.Zero);
        _udpServer = Name(udp, LibC.getsockname)!;
    }

    private int _udp = -1;
    private IPEndPoint _udpServer = null!;

    [TearDown]
    public void TearDown()
    {
        LibC.close(_listener);
        LibC.close(_udp);
        SockShimRuntime.Reset();
        _t.Dispose();
    }

    private delegate int BindFn(int fd, sockaddr* a, socklen_t l);
    private delegate int NameFn(int fd, sockaddr* a, socklen_t* l);

    private static int Bind(int fd, IPEndPoint ep, BindFn f)
    {
        Span<byte> b = stackalloc byte[28];
        int len = SockAddr.Write(b, ep, SockAddr.AF_INET);
        fixed (byte* p = b) return f(fd, (sockaddr*)p, (uint)len);
    }

    private static IPEndPoint? Name(int fd, NameFn f)
    {
        Span<byte> b = stackalloc byte[28];
        socklen_t len = 28;
        fixed (byte* p = b) return f(fd, (sockaddr*)p, &len) == 0 ? SockAddr.Read(p, (int)len) : null;
    }

    /// <summary>Accepts one connection and returns the peer as the server's kernel reports it.</summary>
    private IPEndPoint AcceptPeer()
    {
        Span<byte> b = stackalloc byte[28];
        socklen_t len = 28;
        fixed (byte* p = b)
        {
            int fd = LibC.accept(_listener, (sockaddr*)p, &len);
            Assert.That(fd, Is.GreaterThanOrEqualTo(0));
            LibC.close(fd);
            return SockAddr.Read(p, (int)len)!;
        }
    }

    [TestCase(AllocationTime.Eager)]
    [TestCase(AllocationTime.Lazy)]
    public void Each_AF_INET_TUPLE_socket_connects_from_a_new_address_that_getsockname_reports(AllocationTime allocation)
    {
        UsePool(allocation);
        var seen = new List<IPEndPoint>();
        var fds = new List<int>();
        for (int i = 0; i < 5; i++)
        {
            int fd = socket(AF_INET_TUPLE, SOCK_STREAM, 0);
            Assert.That(fd, Is.GreaterThanOrEqualTo(0), $"errno {errno}");
            fds.Add(fd);
            Assert.That(_t.HeldSlots(), Is.EqualTo(allocation == AllocationTime.Eager ? i + 1 : i), "eager takes it at socket(), lazy at connect()");
            Assert.That(connect(fd, _server), Is.Zero, $"errno {errno}");
            var peer = AcceptPeer();
            Assert.That(Name(fd, getsockname), Is.EqualTo(peer), "getsockname equals what the server saw");
            Assert.That(peer.Port, Is.Not.Zero, "an ephemeral port");
            seen.Add(peer);
        }
        Assert.That(seen.Select(e => e.Address).Distinct().Count(), Is.EqualTo(5));
        Assert.That(seen.All(e => _t.Pool.Definition.Contains(e.Address)), Is.True);
        foreach (var fd in fds) Assert.That(close(fd), Is.Zero);
        Assert.That(_t.HeldSlots(), Is.Zero, "close released every address");
    }

    [Test]
    public void The_fourth_argument_chooses_between_the_common_address_a_pool_and_a_named_pool()
    {
        int common = socket(AF_INET, SOCK_STREAM, 0, TUPLE_DEFAULT);
        Assert.That(connect(common, _server), Is.Zero);
        Assert.That(AcceptPeer().Address, Is.EqualTo(IPAddress.Loopback));

        int pooled = socket(AF_INET, SOCK_STREAM, 0, TUPLE_STATIC);
        Assert.That(connect(pooled, _server), Is.Zero);
        Assert.That(_t.Pool.Definition.Contains(AcceptPeer().Address), Is.True);

        int named = socket(AF_INET, SOCK_STREAM, 0, tuple_pool("berkeley"));
        Assert.That(named, Is.GreaterThanOrEqualTo(0));
        Assert.That(tuple_pool("video"), Is.EqualTo(-1));
        Assert.That(errno, Is.EqualTo(EINVAL));
        Assert.That(socket(AF_INET, SOCK_STREAM, 0, TUPLE_DHCP), Is.EqualTo(-1));
        Assert.That(errno, Is.EqualTo(EOPNOTSUPP), "no DHCP pool is configured");
        foreach (var fd in new[] { common, pooled, named }) close(fd);
        Assert.That(_t.HeldSlots(), Is.Zero);
    }

    [Test]
    public void Bind_to_INADDR_ANY_keeps_the_port_and_fills_in_the_new_address()
    {
        int fd = socket(AF_INET_TUPLE, SOCK_STREAM, 0);
        int port = 0;
        for (int attempt = 0; attempt < 20 && port == 0; attempt++)
        {
            int p = Random.Shared.Next(20_000, 32_000);
            if (Bind(fd, new IPEndPoint(IPAddress.Any, p), bind) == 0) port = p;
        }
        Assert.That(port, Is.Not.Zero, $"errno {errno}");
        var local = Name(fd, getsockname)!;
        Assert.That(local.Port, Is.EqualTo(port));
        Assert.That(_t.Pool.Definition.Contains(local.Address), Is.True);
        Assert.That(connect(fd, _server), Is.Zero);
        Assert.That(AcceptPeer(), Is.EqualTo(local));
        close(fd);
    }

    [Test]
    public void A_udp_tuple_socket_binds_its_address_at_the_first_sendto()
    {
        UsePool(AllocationTime.Lazy);
        int fd = socket(AF_INET_TUPLE, SOCK_DGRAM, 0);
        Span<byte> to = stackalloc byte[28];
        int len = SockAddr.Write(to, _udpServer, SockAddr.AF_INET);
        byte payload = 42;
        fixed (byte* p = to) Assert.That((long)sendto(fd, &payload, 1, 0, (sockaddr*)p, (uint)len), Is.EqualTo(1));
        Span<byte> from = stackalloc byte[28];
        socklen_t fromLen = 28;
        byte got;
        fixed (byte* p = from) Assert.That((long)LibC.recvfrom(_udp, &got, 1, 0, (sockaddr*)p, &fromLen), Is.EqualTo(1));
        IPEndPoint seen;
        fixed (byte* p = from) seen = SockAddr.Read(p, (int)fromLen)!;
        Assert.That(_t.Pool.Definition.Contains(seen.Address), Is.True);
        Assert.That(Name(fd, getsockname), Is.EqualTo(seen));
        close(fd);
        Assert.That(_t.HeldSlots(), Is.Zero);
    }

    [Test]
    public void The_address_lives_until_the_last_duplicate_descriptor_is_closed()
    {
        int fd = socket(AF_INET_TUPLE, SOCK_STREAM, 0);
        int copy = dup(fd);
        int third = fcntl(fd, F_DUPFD, 100);
        Assert.That(copy, Is.GreaterThanOrEqualTo(0));
        Assert.That(third, Is.GreaterThanOrEqualTo(100));
        close(fd);
        close(copy);
        Assert.That(_t.HeldSlots(), Is.EqualTo(1), "still one descriptor open");
        int other = socket(AF_INET, SOCK_STREAM, 0);
        Assert.That(dup2(other, third), Is.EqualTo(third), "dup2 over the last one closes it");
        Assert.That(_t.HeldSlots(), Is.Zero);
        close(third);
        close(other);
    }

    [Test]
    public void An_exhausted_pool_gives_EADDRNOTAVAIL()
    {
        UsePool(AllocationTime.Eager, ranges: "127.104.1.0/31");
        int a = socket(AF_INET_TUPLE, SOCK_STREAM, 0), b = socket(AF_INET_TUPLE, SOCK_STREAM, 0);
        Assert.That(a >= 0 && b >= 0, Is.True);
        Assert.That(socket(AF_INET_TUPLE, SOCK_STREAM, 0), Is.EqualTo(-1));
        Assert.That(errno, Is.EqualTo(EADDRNOTAVAIL));
        close(a);
        close(b);

        UsePool(AllocationTime.Lazy, ranges: "127.104.1.2/32");
        int c = socket(AF_INET_TUPLE, SOCK_STREAM, 0), d = socket(AF_INET_TUPLE, SOCK_STREAM, 0);
        Assert.That(connect(c, _server), Is.Zero);
        AcceptPeer();
        Assert.That(connect(d, _server), Is.EqualTo(-1));
        Assert.That(errno, Is.EqualTo(EADDRNOTAVAIL));
        close(c);
        close(d);
        Assert.That(_t.HeldSlots(), Is.Zero);
    }

    [Test]
    public void Bad_calls_set_the_same_errno_as_libc()
    {
        // A bad descriptor.
        Assert.That(Compare(() => Bind(-1, new IPEndPoint(IPAddress.Loopback, 0), bind), () => Bind(-1, new IPEndPoint(IPAddress.Loopback, 0), LibC.bind)), Is.EqualTo((-1, EBADF)));
        Assert.That(Compare(() => close(-1), () => LibC.close(-1)), Is.EqualTo((-1, EBADF)));
        // An unsupported family.
        Assert.That(Compare(() => socket(12345, SOCK_STREAM, 0), () => LibC.socket(12345, LibC.SOCK_STREAM, 0)), Is.EqualTo((-1, EAFNOSUPPORT)));
        // An address in use: the listener's own endpoint, bound by a second socket.
        int mine = socket(AF_INET, SOCK_STREAM, 0), theirs = LibC.socket(LibC.AF_INET, LibC.SOCK_STREAM, 0);
        Assert.That(Compare(() => Bind(mine, _server, bind), () => Bind(theirs, _server, LibC.bind)), Is.EqualTo((-1, EADDRINUSE)));
        close(mine);
        LibC.close(theirs);
    }

    /// <summary>The errors of SockShim's own paths (its bind of the socket's own address, its
    /// connect after that bind, its socket() with a tuple) are the kernel's, as libc reports the
    /// equivalent plain call.</summary>
    [Test]
    public void SockShims_own_paths_set_the_same_errno_as_libc()
    {
        // A tuple socket's bind of its own address to a port another socket holds there.
        int tuple = socket(AF_INET_TUPLE, SOCK_STREAM, 0);
        var own = Name(tuple, getsockname)!.Address;
        int holder = LibC.socket(LibC.AF_INET, LibC.SOCK_STREAM, 0), rival = LibC.socket(LibC.AF_INET, LibC.SOCK_STREAM, 0);
        Assert.That(Bind(holder, new IPEndPoint(own, 0), LibC.bind), Is.Zero);
        int taken = Name(holder, LibC.getsockname)!.Port;
        Assert.That(Compare(() => Bind(tuple, new IPEndPoint(IPAddress.Any, taken), bind), () => Bind(rival, new IPEndPoint(own, taken), LibC.bind)),
            Is.EqualTo((-1, EADDRINUSE)));

        // A tuple connect to a port where nothing listens (bound, not listening: the kernel resets).
        int refusing = LibC.socket(LibC.AF_INET, LibC.SOCK_STREAM, 0);
        Assert.That(Bind(refusing, new IPEndPoint(IPAddress.Loopback, 0), LibC.bind), Is.Zero);
        var closedPort = Name(refusing, LibC.getsockname)!;
        int tuple2 = socket(AF_INET_TUPLE, SOCK_STREAM, 0), plain = LibC.socket(LibC.AF_INET, LibC.SOCK_STREAM, 0);
        Assert.That(Compare(() => connect(tuple2, closedPort), () => Bind(plain, closedPort, LibC.connect)), Is.EqualTo((-1, ECONNREFUSED)));
        Assert.That(Name(tuple2, getsockname)!.Address.ToString(), Does.StartWith("127.104."), "the refused connect went out from the socket's own address");

        // A family SockShim cannot give an address to, asked for with a tuple.
        Assert.That(Compare(() => socket(12345, SOCK_STREAM, 0, TUPLE_STATIC), () => LibC.socket(12345, LibC.SOCK_STREAM, 0)), Is.EqualTo((-1, EAFNOSUPPORT)));

        // A lazy tuple descriptor closed behind SockShim's back: its acquire-and-bind meets a bad descriptor.
        UsePool(AllocationTime.Lazy);
        int gone = socket(AF_INET_TUPLE, SOCK_STREAM, 0);
        LibC.close(gone);
        Assert.That(Compare(() => connect(gone, _server), () => Bind(gone, _server, LibC.connect)), Is.EqualTo((-1, EBADF)));
        Assert.That(_t.HeldSlots(), Is.Zero, "the address taken for the dead descriptor went back");

        foreach (int fd in new[] { tuple, holder, rival, refusing, tuple2, plain }) close(fd);
    }

    private static (int Result, int Errno) Compare(Func<int> ours, Func<int> libc)
    {
        int r1 = ours(); int e1 = errno;
        int r2 = libc(); int e2 = LibC.errno;
        Assert.That((r1, e1), Is.EqualTo((r2, e2)), "SockShim and libc agree");
        return (r1, e1);
    }

    private static int connect(int fd, IPEndPoint to) => Bind(fd, to, Berkeley.connect);
}
