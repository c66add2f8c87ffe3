using System.Buffers.Binary;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace SockShim.Stack.Provisioning;

/// <summary>
/// A packet socket (AF_PACKET, non-blocking) on one interface: whole Ethernet frames out, and in
/// only the frames of one EtherType (0: none). The one way SockShim reaches the link below IP:
/// the announcer's gratuitous ARP and neighbour advertisements, the DHCP client's ARP probe.
/// </summary>
internal sealed unsafe class LinkSocket : IDisposable
{
    private LinkSocket(int fd) => Descriptor = fd;

    /// <summary>The socket, for a poll.</summary>
    public int Descriptor { get; }

    /// <summary>Opens <paramref name="what"/> ("an ARP socket for ...") on <paramref name="interfaceName"/>,
    /// receiving the frames of <paramref name="etherType"/>; null with a reason.</summary>
    public static LinkSocket? Open(string interfaceName, ushort etherType, string what, out string why)
    {
        if (HostFacts.InterfaceIndex(interfaceName) is not { } index)
        {
            why = $"interface '{interfaceName}' does not exist";
            return null;
        }
        ushort protocol = BinaryPrimitives.ReverseEndianness(etherType);
        int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
        if (fd < 0)
        {
            why = $"{what} could not be opened (errno {errno}; it needs CAP_NET_RAW)";
            return null;
        }
        sockaddr_ll link = default;
        link.sll_family = (ushort)AF_PACKET;
        link.sll_protocol = protocol;
        link.sll_ifindex = (int)index;
        if (bind(fd, (sockaddr*)&link, (uint)sizeof(sockaddr_ll)) != 0)
        {
            why = $"binding {what} to {interfaceName} failed: errno {errno}";
            close(fd);
            return null;
        }
        why = "";
        return new LinkSocket(fd);
    }

    /// <summary>Sends one whole frame: 0, or the errno.</summary>
    public int Send(ReadOnlySpan<byte> frame)
    {
        fixed (byte* p = frame) return send(Descriptor, p, frame.Length, 0) == frame.Length ? 0 : errno;
    }

    /// <summary>The length of the next frame waiting, copied into <paramref name="buffer"/>; 0 when none is.</summary>
    public int Receive(Span<byte> buffer)
    {
        fixed (byte* p = buffer) return (int)Math.Max(0, (long)recv(Descriptor, p, buffer.Length, 0));
    }

    public void Dispose() => close(Descriptor);
}
