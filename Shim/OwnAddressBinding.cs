using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace SockShim;

/// <summary>Binds a socket to its own address: shared by <see cref="TupleSocket"/> and the
/// Interceptor's hooks, so both bind the same way.</summary>
internal static class OwnAddressBinding
{
    // SetSocketOption only passes options it has a mapping for; these go to the kernel as they are.
    private const int SOL_IP = 0, IP_BIND_ADDRESS_NO_PORT = 24;

    /// <summary>The endpoint to bind: an IPv4 address on an IPv6 (dual-mode) socket is bound
    /// IPv4-mapped. With <paramref name="deferPort"/> and port 0, the port is left to connect()
    /// (IP_BIND_ADDRESS_NO_PORT), which picks it against the full 4-tuple, so the address keeps
    /// its whole ephemeral range and a later bind may still choose a port. Right before a
    /// connect there is nothing to defer to: the kernel picks the port at bind, which costs less
    /// than the 4-tuple search (about 8 us per connection measured here), and the address is the
    /// socket's own, so its range is not shared.</summary>
    public static IPEndPoint Prepare(Socket socket, IPAddress address, int port, bool deferPort)
    {
        if (socket.AddressFamily == AddressFamily.InterNetworkV6 && address.AddressFamily == AddressFamily.InterNetwork)
            address = address.MapToIPv6();
        if (port == 0 && deferPort) DeferPort(socket);
        return new IPEndPoint(address, port);
    }

    // Set with setsockopt on the descriptor, not Socket.SetRawSocketOption: .NET counts a raw
    // option as configuration it cannot replay, and then refuses to retry a multi-address
    // connect on a fresh descriptor after a refusal ("invalid for use after a failed connection").
    private static void DeferPort(Socket socket)
    {
        var handle = Handle(socket);
        if (handle is null || handle.IsInvalid) throw new ObjectDisposedException(nameof(Socket));
        if (!DeferPort((int)handle.DangerousGetHandle()))
            throw new SocketException((int)SocketError.InvalidArgument, $"SockShim: setsockopt(IP_BIND_ADDRESS_NO_PORT) failed, errno {Tmds.Linux.LibC.errno}");
    }

    /// <summary>Sets IP_BIND_ADDRESS_NO_PORT on a descriptor; false (errno set) on failure.</summary>
    public static unsafe bool DeferPort(int fd)
    {
        int one = 1;
        return Tmds.Linux.LibC.setsockopt(fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(int)) == 0;
    }

    /// <summary>The socket's handle, read from the field: Socket.Handle and Socket.SafeHandle
    /// mark the handle exposed, which also switches off multi-address connect retries.</summary>
    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_handle")]
    public static extern ref SafeSocketHandle? Handle(Socket socket);

    public static bool IsWildcard(IPAddress a) =>
        a.Equals(IPAddress.Any) || a.Equals(IPAddress.IPv6Any) || (a.IsIPv4MappedToIPv6 && a.MapToIPv4().Equals(IPAddress.Any));
}
