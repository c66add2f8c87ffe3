using System.Collections.Concurrent;
using System.Net;
using PacketDotNet;
using SharpPcap;
using SharpPcap.LibPcap;

namespace SockShim.Interceptor.Compare;

/// <summary>One captured TCP or UDP packet, as the comparison needs it.</summary>
/// <summary>One captured TCP or UDP packet, as the comparison needs it. <see cref="MaskedBytes"/> is
/// the payload's length once address literals in it are masked: an app or server that writes an
/// address into its data sends more or fewer bytes only because the address differs.</summary>
public sealed record CapturedPacket(string Protocol, IPEndPoint Source, IPEndPoint Destination, int PayloadBytes, int MaskedBytes, int Dscp, bool Syn);

/// <summary>A SharpPcap capture on one or more interfaces while a command runs.</summary>
public sealed class TrafficCapture : IDisposable
{
    private readonly List<LibPcapLiveDevice> _devices = new();
    private readonly ConcurrentQueue<CapturedPacket> _packets = new();

    /// <summary>Starts capturing; a clear message when an interface is missing or capture is not permitted.</summary>
    public static TrafficCapture Start(IReadOnlyList<string> interfaces, string filter)
    {
        var capture = new TrafficCapture();
        try
        {
            var all = LibPcapLiveDeviceList.Instance;
            foreach (var name in interfaces)
            {
                var device = all.FirstOrDefault(d => d.Name == name)
                    ?? throw new CompareException($"no interface '{name}' to capture on (interfaces: {string.Join(", ", all.Select(d => d.Name))})");
                device.Open(new DeviceConfiguration { Mode = DeviceModes.None, ReadTimeout = 50, Immediate = true, BufferSize = 32 << 20 });
                device.Filter = filter;
                device.OnPacketArrival += capture.Arrived;
                device.StartCapture();
                capture._devices.Add(device);
            }
        }
        catch (PcapException ex)
        {
            capture.Dispose();
            throw new CompareException($"cannot capture on {string.Join(", ", interfaces)}: {ex.Message} (capturing needs root or CAP_NET_RAW)");
        }
        catch (DllNotFoundException)
        {
            capture.Dispose();
            throw new CompareException("libpcap is not installed (`apt-get install libpcap0.8`)");
        }
        return capture;
    }

    private void Arrived(object sender, PacketCapture e)
    {
        var raw = e.GetPacket();
        Packet packet;
        try { packet = Packet.ParsePacket(raw.LinkLayerType, raw.Data); }
        catch (Exception) { return; } // not ours to judge: a frame PacketDotNet cannot read
        if (packet.Extract<IPPacket>() is not { } ip) return;
        int dscp = ip is IPv4Packet v4 ? v4.TypeOfService >> 2 : ip is IPv6Packet v6 ? v6.TrafficClass >> 2 : 0;
        if (packet.Extract<TcpPacket>() is { } tcp)
            _packets.Enqueue(new("tcp", new IPEndPoint(ip.SourceAddress, tcp.SourcePort), new IPEndPoint(ip.DestinationAddress, tcp.DestinationPort),
                tcp.PayloadData?.Length ?? 0, Masked(tcp.PayloadData), dscp, tcp.Synchronize && !tcp.Acknowledgment));
        else if (packet.Extract<UdpPacket>() is { } udp)
            _packets.Enqueue(new("udp", new IPEndPoint(ip.SourceAddress, udp.SourcePort), new IPEndPoint(ip.DestinationAddress, udp.DestinationPort),
                udp.PayloadData?.Length ?? 0, Masked(udp.PayloadData), dscp, false));
    }

    private static int Masked(byte[]? payload) =>
        payload is null or { Length: 0 } ? 0 : Comparison.Mask(System.Text.Encoding.Latin1.GetString(payload)).Length;

    /// <summary>Stops the capture (after a moment for packets still in the kernel's buffer) and returns what it saw.</summary>
    public IReadOnlyList<CapturedPacket> Stop()
    {
        Thread.Sleep(150);
        foreach (var d in _devices) d.StopCapture();
        return _packets.ToList();
    }

    public void Dispose()
    {
        foreach (var d in _devices) { try { d.Close(); } catch (PcapException) { } }
        _devices.Clear();
    }
}

/// <summary>A problem running a comparison that the user can fix (missing interface, no permission).</summary>
public sealed class CompareException(string message) : Exception(message);
