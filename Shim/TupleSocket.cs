using System.Net;
using System.Net.Sockets;
using SockShim.Binding;
using SockShim.Stack;
using SockShim.Stack.Addressing;
using SockShim.Stack.Claims;
using SockShim.Stack.Configuration;
using SockShim.Stack.Errors;
using SockShim.Stack.Policy;
using SockShim.Stack.Pools;

namespace SockShim;

/// <summary>
/// A <see cref="Socket"/> with its own IP address, the method's modified socket() for .NET:
/// <c>new TupleSocket(TupleFamilies.AF_INET_TUPLE, SocketType.Stream, ProtocolType.Tcp)</c>.
/// </summary>
/// <remarks>
/// With eager allocation the address is taken and bound (with no port yet) in the constructor,
/// so the socket goes out from it whatever type it is later used through. With lazy allocation
/// it is taken at the first Bind, Connect or SendTo called through this type. Binding to the
/// wildcard keeps the port asked for and puts the socket's address in; binding to a specific
/// address leaves the socket alone. Connect and SendTo on an unbound socket bind the address
/// with an ephemeral port chosen at connect time (IP_BIND_ADDRESS_NO_PORT), so each address has
/// its own full port range. The address goes back to the pool on Dispose, Close or finalization.
/// </remarks>
public partial class TupleSocket : Socket, IBindTarget
{
    private readonly AddressStack _stack;
    private Lease? _lease;
    private bool _boundByShim;

    /// <summary>A socket of <paramref name="addressFamily"/>; <see cref="TupleFamilies.AF_INET_TUPLE"/>
    /// or <see cref="TupleFamilies.AF_INET6_TUPLE"/> (or a <paramref name="tuple"/> asking for one)
    /// gives it a new address from the process's stack.</summary>
    public TupleSocket(AddressFamily addressFamily, SocketType socketType, ProtocolType protocolType, SocketTuple tuple = default)
        : this(SockShimRuntime.Disabled ? null! : SockShimRuntime.Stack, addressFamily, socketType, protocolType, tuple) { }

    /// <summary>As the other constructor, with addresses from <paramref name="stack"/>.</summary>
    public TupleSocket(AddressStack stack, AddressFamily addressFamily, SocketType socketType, ProtocolType protocolType, SocketTuple tuple = default)
        : base(TupleFamilies.ToRealFamily(addressFamily), socketType, protocolType)
    {
        _stack = stack;
        Tuple = TupleFamilies.IsTupleFamily(addressFamily) && !tuple.NewAddress ? tuple with { NewAddress = true } : tuple;
        // Switched off: an ordinary socket of the real family, and no stack is ever consulted.
        if (stack is null) Tuple = Tuple with { NewAddress = false };
        if (Tuple.NewAddress && (Tuple.Allocation ?? stack!.Allocation) == AllocationTime.Eager)
        {
            try
            {
                AcquireLease("socket() eager");
                BindLease(0, deferPort: true);
            }
            catch
            {
                Dispose();
                throw;
            }
        }
    }

    /// <summary>What this socket asked for.</summary>
    public SocketTuple Tuple { get; }

    /// <summary>The socket's own address while it holds one; null for a common-address socket or
    /// before a lazy socket's first bind/connect.</summary>
    public Lease? Lease => _lease;

    /// <summary>Binds. An IPAddress.Any/IPv6Any endpoint becomes the socket's own address with the
    /// same port; a specific address is bound as given (and any address held is returned).</summary>
    public new void Bind(EndPoint localEP)
    {
        if (!Tuple.NewAddress || localEP is not IPEndPoint ip || !SocketBinder.IsWildcard(ip.Address))
        {
            ReleaseLease();
            SocketBinder.BindAsGiven(this, localEP);
            return;
        }
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _closed) != 0, this);
        if (_lease is null) AcquireLease($"bind port {ip.Port}");
        BindLease(ip.Port, deferPort: true);
    }

    public new void Connect(EndPoint remoteEP) { PrepareFor(remoteEP, "connect"); base.Connect(remoteEP); ForgetStaleLocalEndPoint(); }
    public new void Connect(IPAddress address, int port) => Connect(new IPEndPoint(address, port));
    public new void Connect(string host, int port) => Connect(new DnsEndPoint(host, port));
    public new void Connect(IPAddress[] addresses, int port) { PrepareFor(null, "connect"); base.Connect(addresses, port); ForgetStaleLocalEndPoint(); }

    public new Task ConnectAsync(EndPoint remoteEP) => ConnectAsync(remoteEP, CancellationToken.None).AsTask();
    public new ValueTask ConnectAsync(EndPoint remoteEP, CancellationToken cancellationToken)
    {
        PrepareFor(remoteEP, "connect");
        return Completed(base.ConnectAsync(remoteEP, cancellationToken));
    }
    public new Task ConnectAsync(IPAddress address, int port) => ConnectAsync(new IPEndPoint(address, port));
    public new ValueTask ConnectAsync(IPAddress address, int port, CancellationToken cancellationToken) => ConnectAsync(new IPEndPoint(address, port), cancellationToken);
    public new Task ConnectAsync(string host, int port) => ConnectAsync(new DnsEndPoint(host, port));
    public new ValueTask ConnectAsync(string host, int port, CancellationToken cancellationToken) => ConnectAsync(new DnsEndPoint(host, port), cancellationToken);
    public new bool ConnectAsync(SocketAsyncEventArgs e)
    {
        PrepareFor(e.RemoteEndPoint, "connect");
        return base.ConnectAsync(e);
    }

    public new int SendTo(byte[] buffer, EndPoint remoteEP) { PrepareFor(remoteEP, "sendto"); return Sent(base.SendTo(buffer, remoteEP)); }
    public new int SendTo(byte[] buffer, SocketFlags socketFlags, EndPoint remoteEP) { PrepareFor(remoteEP, "sendto"); return Sent(base.SendTo(buffer, socketFlags, remoteEP)); }
    public new int SendTo(byte[] buffer, int offset, int size, SocketFlags socketFlags, EndPoint remoteEP) { PrepareFor(remoteEP, "sendto"); return Sent(base.SendTo(buffer, offset, size, socketFlags, remoteEP)); }
    public new int SendTo(ReadOnlySpan<byte> buffer, EndPoint remoteEP) { PrepareFor(remoteEP, "sendto"); return Sent(base.SendTo(buffer, remoteEP)); }
    public new int SendTo(ReadOnlySpan<byte> buffer, SocketFlags socketFlags, EndPoint remoteEP) { PrepareFor(remoteEP, "sendto"); return Sent(base.SendTo(buffer, socketFlags, remoteEP)); }
    public new async Task<int> SendToAsync(ArraySegment<byte> buffer, EndPoint remoteEP) { PrepareFor(remoteEP, "sendto"); return Sent(await base.SendToAsync(buffer, remoteEP).ConfigureAwait(false)); }
    public new async ValueTask<int> SendToAsync(ReadOnlyMemory<byte> buffer, EndPoint remoteEP, CancellationToken cancellationToken = default) { PrepareFor(remoteEP, "sendto"); return Sent(await base.SendToAsync(buffer, remoteEP, cancellationToken).ConfigureAwait(false)); }

    // The first datagram makes the kernel pick the port deferred at bind: the cached
    // LocalEndPoint (port 0) is stale from then on.
    private int Sent(int bytes)
    {
        ForgetStaleLocalEndPoint();
        return bytes;
    }

    /// <summary>Before connect or sendto: a tuple socket not yet bound gets its address now.</summary>
    private void PrepareFor(EndPoint? remote, string operation)
    {
        // Disposed: what Socket would say, with no address taken for a closed socket.
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _closed) != 0, this);
        if (!Tuple.NewAddress) return;
        if (_lease is null && IsBound) return; // bound by the app through the base type: its choice stands
        if (_lease is not null && _boundByShim)
        {
            if (SocketBinder.Reach(_lease, remote as IPEndPoint) is { } unreachable) throw ShimErrors.ToException(unreachable);
            return;
        }
        if (SocketBinder.BeforeTraffic(_stack, this, remote as IPEndPoint, operation, required: true) is { } failed) throw ShimErrors.ToException(failed);
    }

    private async ValueTask Completed(ValueTask connect)
    {
        await connect.ConfigureAwait(false);
        ForgetStaleLocalEndPoint();
    }

    private void AcquireLease(string reason)
    {
        if (SocketBinder.Acquire(_stack, this, null, reason) is { } failed) throw ShimErrors.ToException(failed);
    }

    private void BindLease(int port, bool deferPort)
    {
        if (SocketBinder.BindOwn(this, port, deferPort) is { } failed) throw ShimErrors.ToException(failed);
    }

    private void ForgetStaleLocalEndPoint() => NetSockets.ForgetStaleLocalEndPoint(this);

    int IBindTarget.Descriptor => NetSockets.DescriptorOf(this);
    AddressFamily IBindTarget.Family => AddressFamily;
    bool IBindTarget.DualMode => AddressFamily == AddressFamily.InterNetworkV6 && DualMode;
    string? IBindTarget.PoolName => Tuple.Pool;
    // Set with a full fence, then Dispose asked: a lease taken on one thread while another
    // disposes the socket is given back by whichever of the two comes second.
    Lease? IBindTarget.Lease
    {
        get => Volatile.Read(ref _lease);
        set
        {
            Interlocked.Exchange(ref _lease, value);
            if (value is not null && Volatile.Read(ref _closed) != 0) value.Release();
        }
    }
    private int _closed;
    int IBindTarget.BindEndpoint(IPEndPoint own)
    {
        NetSockets.Bind(this, own);
        _boundByShim = true;
        ForgetStaleLocalEndPoint();
        return 0;
    }
    void IBindTarget.LeaseLost(Lease lease, string reason) => LeaseLoss.Close(this, lease, reason);

    private void ReleaseLease()
    {
        Interlocked.Exchange(ref _lease, null)?.Release();
        _boundByShim = false;
    }

    /// <summary>Closes the socket, then returns its address: the kernel lets go of the address
    /// first, so the next holder cannot meet this socket on it.</summary>
    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        Interlocked.Exchange(ref _closed, 1);
        Volatile.Read(ref _lease)?.Release();
    }
}
