using System.Buffers.Binary;
using System.Net;
using System.Text;
using SockShim.Stack.Wire;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace SockShim.Stack.Dhcp;

/// <summary>
/// The client's UDP sockets on port 68, held with plain system calls so that SockShim's own
/// traffic never passes through the intercepted System.Net.Sockets. One socket bound to the
/// wildcard on the interface takes the broadcast replies of every acquisition (SO_REUSEADDR:
/// each process of the host gets its own copy of a broadcast); a lease in RENEWING or
/// REBINDING gets a socket bound to its own address, so the server's unicast reply to ciaddr
/// reaches this process and no other, and the renewal leaves from the leased address.
/// </summary>
internal sealed unsafe class DhcpTransport : IDisposable
{
    private readonly string _interface;
    private readonly int _wake;

    public int BroadcastSocket { get; }

    private DhcpTransport(string interfaceName, int broadcast, int wake)
    {
        _interface = interfaceName;
        BroadcastSocket = broadcast;
        _wake = wake;
    }

    public int WakeDescriptor => _wake;

    /// <summary>Opens the wildcard socket on <paramref name="interfaceName"/>; null with a reason.</summary>
    public static DhcpTransport? Open(string interfaceName, out string why)
    {
        int fd = OpenSocket(interfaceName, IPAddress.Any, freeBind: false, out why);
        if (fd < 0) return null;
        int wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (wake < 0)
        {
            why = $"eventfd failed: errno {errno}";
            close(fd);
            return null;
        }
        return new DhcpTransport(interfaceName, fd, wake);
    }

    /// <summary>A socket bound to a leased address, port 68; -1 with a reason.</summary>
    public int OpenLeaseSocket(IPAddress address, bool freeBind, out string why) => OpenSocket(_interface, address, freeBind, out why);

    private static int OpenSocket(string interfaceName, IPAddress address, bool freeBind, out string why)
    {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) { why = $"socket() failed: errno {errno}"; return -1; }
        int one = 1;
        var name = Encoding.ASCII.GetBytes(interfaceName + "\0");
        bool ok = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(int)) == 0 &&
                  setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(int)) == 0 &&
                  (!freeBind || setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(int)) == 0);
        if (ok)
        {
            // Broadcasts must leave by, and be taken only from, the pool's interface.
            fixed (byte* n = name) ok = setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, n, (uint)name.Length) == 0;
        }
        if (!ok)
        {
            int e = errno;
            close(fd);
            why = e == EPERM ? $"binding a DHCP socket to interface {interfaceName} needs CAP_NET_RAW or root" : $"setting up the DHCP socket on {interfaceName} failed: errno {e}";
            return -1;
        }
        sockaddr_in local = default;
        Fill(ref local, address, DhcpMessage.ClientPort);
        if (bind(fd, (sockaddr*)&local, (uint)sizeof(sockaddr_in)) != 0)
        {
            int e = errno;
            close(fd);
            why = e == EACCES ? $"binding UDP port 68 on {interfaceName} needs root or CAP_NET_BIND_SERVICE"
                : e == EADDRINUSE ? $"UDP port 68 on {interfaceName} ({address}) is held by another DHCP client without SO_REUSEADDR; stop it or use another interface"
                : $"binding {address}:68 on {interfaceName} failed: errno {e}";
            return -1;
        }
        why = "";
        return fd;
    }

    private static void Fill(ref sockaddr_in sa, IPAddress address, int port)
    {
        sa.sin_family = AF_INET;
        sa.sin_port = BinaryPrimitives.ReverseEndianness((ushort)port);
        Span<byte> bytes = stackalloc byte[4];
        address.TryWriteBytes(bytes, out _);
        // s_addr holds the address in network order, as its bytes lie in memory.
        fixed (sockaddr_in* p = &sa) bytes.CopyTo(new Span<byte>(&p->sin_addr, 4));
    }

    /// <summary>Sends to <paramref name="destination"/>:67; 0 or errno.</summary>
    public int Send(int fd, ReadOnlySpan<byte> payload, IPAddress destination)
    {
        sockaddr_in to = default;
        Fill(ref to, destination, DhcpMessage.ServerPort);
        fixed (byte* p = payload)
            return sendto(fd, p, payload.Length, MSG_DONTWAIT, (sockaddr*)&to, (uint)sizeof(sockaddr_in)) < 0 ? errno : 0;
    }

    /// <summary>One datagram and the IPv4 address it came from, or -1 when none is waiting. The
    /// source lets the lease machine tell the bound server's replies from anyone else's.</summary>
    public int Receive(int fd, Span<byte> buffer, out IPAddress source)
    {
        sockaddr_in from = default;
        socklen_t fromLength = (uint)sizeof(sockaddr_in);
        long n;
        fixed (byte* p = buffer) n = recvfrom(fd, p, buffer.Length, MSG_DONTWAIT, (sockaddr*)&from, &fromLength);
        source = n >= 0 && from.sin_family == AF_INET ? new IPAddress(new ReadOnlySpan<byte>(&from.sin_addr, 4)) : IPAddress.Any;
        return n < 0 ? -1 : (int)n;
    }

    /// <summary>Waits until one of <paramref name="fds"/> is readable or the timeout passes; the
    /// wake descriptor is always included and drained.</summary>
    public void Wait(List<int> fds, int timeoutMs, List<int> readable)
    {
        readable.Clear();
        int n = fds.Count + 1;
        var polls = n <= 256 ? stackalloc pollfd[n] : new pollfd[n];
        polls[0] = new pollfd { fd = _wake, events = POLLIN };
        for (int i = 0; i < fds.Count; i++) polls[i + 1] = new pollfd { fd = fds[i], events = POLLIN };
        int ready;
        fixed (pollfd* p = polls) ready = poll(p, (ulong_t)(ulong)n, timeoutMs);
        if (ready <= 0) return;
        if ((polls[0].revents & POLLIN) != 0)
        {
            ulong drained;
            read(_wake, &drained, sizeof(ulong));
        }
        for (int i = 1; i < n; i++)
            if ((polls[i].revents & (POLLIN | POLLERR)) != 0) readable.Add(polls[i].fd);
    }

    /// <summary>Wakes <see cref="Wait"/> from another thread.</summary>
    public void Wake()
    {
        ulong one = 1;
        write(_wake, &one, sizeof(ulong));
    }

    public static void Close(int fd)
    {
        if (fd >= 0) close(fd);
    }

    public void Dispose()
    {
        close(BroadcastSocket);
        close(_wake);
    }
}
