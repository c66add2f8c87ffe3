using System.Net;

namespace SockShim.Interceptor.Compare;

/// <summary>One conversation: who started it (the command's side, "local") and with whom.</summary>
public sealed record Flow(string Protocol, string Local, string Remote, int PacketsOut, int PacketsIn, long BytesOut, long BytesIn, int[] Dscp,
    long MaskedBytesOut, long MaskedBytesIn);

/// <summary>Packets grouped into flows by their address pair; the side that sent the SYN (TCP) or
/// the first datagram (UDP) is the initiator.</summary>
public static class FlowTable
{
    public static List<Flow> Build(IEnumerable<CapturedPacket> packets)
    {
        var flows = new Dictionary<(string, string, string), FlowBuilder>();
        foreach (var p in packets)
        {
            string a = p.Source.ToString(), b = p.Destination.ToString();
            var key = string.CompareOrdinal(a, b) < 0 ? (p.Protocol, a, b) : (p.Protocol, b, a);
            if (!flows.TryGetValue(key, out var flow))
            {
                // A TCP flow seen first mid-stream (no SYN) still gets an initiator: its first sender.
                flows[key] = flow = new FlowBuilder(p.Protocol, p.Source, p.Destination);
            }
            if (p.Syn) (flow.Local, flow.Remote) = (p.Source, p.Destination);
            flow.Add(p);
        }
        return flows.Values.Select(f => f.ToFlow()).OrderBy(f => f.Protocol).ThenBy(f => f.Remote).ThenBy(f => f.Local).ToList();
    }

    private sealed class FlowBuilder(string protocol, IPEndPoint local, IPEndPoint remote)
    {
        private readonly List<CapturedPacket> _packets = new();
        public IPEndPoint Local = local, Remote = remote;
        public void Add(CapturedPacket p) => _packets.Add(p);

        public Flow ToFlow()
        {
            var outgoing = _packets.Where(p => p.Source.Equals(Local)).ToList();
            var incoming = _packets.Where(p => !p.Source.Equals(Local)).ToList();
            return new Flow(protocol, Local.ToString(), Remote.ToString(), outgoing.Count, incoming.Count,
                outgoing.Sum(p => (long)p.PayloadBytes), incoming.Sum(p => (long)p.PayloadBytes), outgoing.Select(p => p.Dscp).Distinct().Order().ToArray(),
                outgoing.Sum(p => (long)p.MaskedBytes), incoming.Sum(p => (long)p.MaskedBytes));
        }
    }
}
