using System.Net;
using System.Runtime.InteropServices;
using SockShim.Binding;
using SockShim.Stack.Configuration;
using SockShim.Stack.Policy;
using SockShim.Stack.Pools;
using Tmds.Linux;

namespace SockShim;

/// <summary>
/// The Berkeley socket calls with the method's modifications, source-compatible with
/// Tmds.Linux.LibC: replace <c>using static Tmds.Linux.LibC;</c> by <c>using static SockShim.Berkeley;</c>
/// and a C-style port compiles unchanged. As in C, failures return -1 and set <see cref="errno"/>;
/// nothing throws.
/// </summary>
/// <remarks>
/// <c>socket(AF_INET_TUPLE, ...)</c> or <c>socket(AF_INET, ..., TUPLE_STATIC)</c> asks for a socket
/// with a new address of its own; <c>TUPLE_DEFAULT</c> (and the three-argument call with a real
/// family) keeps the host's common address. The address is taken at socket() (eager) or at the
/// first bind/connect/sendto (lazy), as configured; bind to INADDR_ANY/in6addr_any fills it in
/// and keeps the port; connect and sendto bind it first when the socket is unbound; getsockname
/// reports it; close of the last descriptor for the socket (after dup, dup2, dup3, F_DUPFD)
/// gives it back. An exhausted pool fails with EADDRNOTAVAIL.
/// </remarks>
public static unsafe partial class Berkeley
{
    /// <summary>The method's address family: an IPv4 socket with a new address.</summary>
    public static sa_family_t AF_INET_TUPLE => (sa_family_t)(ushort)TupleFamilies.AF_INET_TUPLE;
    /// <summary>The method's address family: an IPv6 socket with a new address.</summary>
    public static sa_family_t AF_INET6_TUPLE => (sa_family_t)(ushort)TupleFamilies.AF_INET6_TUPLE;

    /// <summary>Tuple: the host's common address (what socket() without a tuple gives).</summary>
    public const int TUPLE_DEFAULT = 0;
    /// <summary>Tuple: a new address from the first static pool of the socket's family.</summary>
    public const int TUPLE_STATIC = 1;
    /// <summary>Tuple: a new address leased from a DHCP server, through the first DHCP pool of
    /// the socket's family (EOPNOTSUPP when none is configured). When the lease ends while the
    /// socket is open, the socket is shut down: reads see end of file, writes fail.</summary>
    public const int TUPLE_DHCP = 2;
    private const int TuplePoolBase = 0x100;

    /// <summary>The tuple value naming a configured pool, or -1 with errno EINVAL.</summary>
    public static int tuple_pool(string name)
    {
        var pools = SockShimRuntime.Stack.Pools;
        for (int i = 0; i < pools.Count; i++)
            if (string.Equals(pools[i].Name, name, StringComparison.OrdinalIgnoreCase)) return TuplePoolBase + i;
        return Fail(LibC.EINVAL);
    }

    public static int socket(int domain, int type, int protocol) => socket(domain, type, protocol, TUPLE_DEFAULT);

    /// <summary>The method's socket(): a non-default <paramref name="tuple"/>, or an AF_*_TUPLE
    /// <paramref name="domain"/>, gives the socket a new address.</summary>
    public static int socket(int domain, int type, int protocol, int tuple)
    {
        bool tupleFamily = domain == (int)TupleFamilies.AF_INET_TUPLE || domain == (int)TupleFamilies.AF_INET6_TUPLE;
        int real = domain == (int)TupleFamilies.AF_INET_TUPLE ? SockAddr.AF_INET : domain == (int)TupleFamilies.AF_INET6_TUPLE ? SockAddr.AF_INET6 : domain;
        if (tuple == TUPLE_DEFAULT && !tupleFamily) return LibC.socket(domain, type, protocol);
        if (real != SockAddr.AF_INET && real != SockAddr.AF_INET6) return Fail(LibC.EAFNOSUPPORT);

        string? pool = null;
        if (tuple is TUPLE_STATIC or TUPLE_DHCP)
        {
            bool dhcp = tuple == TUPLE_DHCP;
            var family = real == SockAddr.AF_INET ? System.Net.Sockets.AddressFamily.InterNetwork : System.Net.Sockets.AddressFamily.InterNetworkV6;
            pool = SockShimRuntime.Stack.Pools.FirstOrDefault(p => p.Definition.Family == family && (p.Source == SourceKind.Dhcp) == dhcp)?.Name;
            if (pool is null) return Fail(dhcp ? LibC.EOPNOTSUPP : LibC.EAFNOSUPPORT);
        }
        else if (tuple >= TuplePoolBase)
        {
            var pools = SockShimRuntime.Stack.Pools;
            if (tuple - TuplePoolBase >= pools.Count) return Fail(LibC.EINVAL);
            pool = pools[tuple - TuplePoolBase].Name;
        }
        else if (tuple != TUPLE_DEFAULT) return Fail(LibC.EINVAL);

        int fd = LibC.socket(real, type, protocol);
        if (fd < 0) return fd;
        var entry = new TupleEntry(real, pool) { Descriptor = fd };
        TupleDescriptors.Add(fd, entry);
        if (SockShimRuntime.Stack.Allocation == AllocationTime.Eager)
        {
            // Bound now with the port left to connect (IP_BIND_ADDRESS_NO_PORT), so a later
            // bind may still choose one.
            if ((SocketBinder.Acquire(SockShimRuntime.Stack, entry, null, "socket() eager") ?? SocketBinder.BindOwn(entry, 0, deferPort: true)) is { } failed)
            {
                close(fd);
                return Fail(failed.Errno);
            }
        }
        return fd;
    }

    public static int bind(int socket, sockaddr* address, socklen_t address_len)
    {
        if (!TupleDescriptors.TryGet(socket, out var entry) || !entry.Active) return SocketBinder.BindAsGiven(socket, address, address_len);
        var requested = SockAddr.Read((byte*)address, (int)address_len);
        if (requested is null) return SocketBinder.BindAsGiven(socket, address, address_len);
        if (!SocketBinder.IsWildcard(requested.Address))
        {
            // A specific address is the caller's choice; what was taken eagerly goes back.
            entry.Active = false;
            Interlocked.Exchange(ref entry.Lease, null)?.Release();
            return SocketBinder.BindAsGiven(socket, address, address_len);
        }
        var failed = (entry.Lease is null ? SocketBinder.Acquire(SockShimRuntime.Stack, entry, null, $"bind port {requested.Port}") : null)
            ?? SocketBinder.BindOwn(entry, requested.Port, deferPort: true);
        return failed is { } f ? Failed(socket, f.Errno) : 0;
    }

    public static int connect(int socket, sockaddr* address, socklen_t address_len)
    {
        if (Prepare(socket, address, address_len, "connect") is { } failed) return Fail(failed);
        return LibC.connect(socket, address, address_len);
    }

    public static ssize_t sendto(int socket, void* buf, size_t len, int flags, sockaddr* address, socklen_t address_len)
    {
        if (address is not null && Prepare(socket, address, address_len, "sendto") is { } failed) return Fail(failed);
        return LibC.sendto(socket, buf, len, flags, address, address_len);
    }

    /// <summary>The socket's own address and port: the kernel's answer, since the address was bound.</summary>
    public static int getsockname(int socket, sockaddr* address, socklen_t* address_len) => LibC.getsockname(socket, address, address_len);

    public static int close(int fd)
    {
        int result = LibC.close(fd);
        int error = LibC.errno;
        // Linux frees the descriptor even when close reports an error (EINTR, EIO).
        if (result == 0 || error != LibC.EBADF) TupleDescriptors.Forget(fd);
        Marshal.SetLastPInvokeError(error);
        return result;
    }

    public static int dup(int oldfd) => Aliased(oldfd, LibC.dup(oldfd), replaced: -1);
    public static int dup2(int oldfd, int newfd) => Aliased(oldfd, LibC.dup2(oldfd, newfd), replaced: newfd);
    public static int dup3(int oldfd, int newfd, int flags) => Aliased(oldfd, LibC.dup3(oldfd, newfd, flags), replaced: newfd);
    public static int fcntl(int fd, int cmd) => LibC.fcntl(fd, cmd);
    public static int fcntl(int fd, int cmd, int arg) =>
        cmd == LibC.F_DUPFD || cmd == LibC.F_DUPFD_CLOEXEC ? Aliased(fd, LibC.fcntl(fd, cmd, arg), replaced: -1) : LibC.fcntl(fd, cmd, arg);
    public static int fcntl(int fd, int cmd, void* arg) => LibC.fcntl(fd, cmd, arg);

    private static int Aliased(int oldfd, int newfd, int replaced)
    {
        if (newfd < 0 || newfd == oldfd) return newfd;
        int error = LibC.errno;
        // dup2/dup3 closed whatever newfd was before.
        if (replaced >= 0) TupleDescriptors.Forget(replaced);
        if (TupleDescriptors.TryGet(oldfd, out var entry)) TupleDescriptors.Alias(newfd, entry);
        Marshal.SetLastPInvokeError(error);
        return newfd;
    }

    /// <summary>Before connect or sendto: an unbound tuple socket gets its address bound now.
    /// Returns an errno, or null to go on.</summary>
    private static int? Prepare(int socket, sockaddr* address, socklen_t address_len, string operation)
    {
        if (!TupleDescriptors.TryGet(socket, out var entry) || !entry.Active || SocketBinder.IsBound(socket)) return null;
        var destination = SockAddr.Read((byte*)address, (int)address_len);
        return SocketBinder.BeforeTraffic(SockShimRuntime.Stack, entry, destination, operation, required: true) is { } failed ? Forgotten(socket, failed.Errno) : null;
    }

    // The descriptor was closed behind SockShim's back: what its entry holds goes back now.
    private static int Forgotten(int fd, int error)
    {
        if (error == LibC.EBADF) TupleDescriptors.Forget(fd);
        return error;
    }

    private static int Failed(int fd, int error) => Fail(Forgotten(fd, error));

    private static int Fail(int error)
    {
        Marshal.SetLastPInvokeError(error);
        return -1;
    }
}
