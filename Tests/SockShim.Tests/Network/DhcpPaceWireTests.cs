using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using SockShim.Stack.Dhcp;

namespace SockShim.Tests.Network;

/// <summary>
/// The pace of DHCP on the wire (issue 16): a capture on the server's side of the link counts
/// the DHCP packets of every second while careless servers (leases of 0 s, T1 = 0) and a
/// prefetch of 500 would make an unpaced client send in bursts. Every bound is derived from the
/// pace's and the lease machine's settings (<see cref="DiscoverPace"/>, <see cref="DhcpTiming"/>).
/// </summary>
[NonParallelizable]
public class DhcpPaceWireTests
{
    private const string ServerId = "192.0.2.254", Peer = "192.0.2.254:7100";
    private static readonly TimeSpan Second = TimeSpan.FromSeconds(1), Observed = TimeSpan.FromSeconds(30);

    /// <summary>The longest a message waits for its answer here (a round trip on the bridge to a
    /// server on the same machine, even a loaded one): an answer, or the REQUEST that follows an
    /// OFFER, lands in a second whose cause was sent up to this much earlier.</summary>
    private static readonly TimeSpan RoundTrip = TimeSpan.FromMilliseconds(500);

    /// <summary>The most client messages of acquisition in any second: every one of them (DISCOVER,
    /// the REQUEST answering an OFFER, retransmissions) takes a token, so what the bucket lets out
    /// in a second, however late the server answers; and, since a capture stamps a packet when it
    /// is seen, not when its token was taken, in a quarter second more (a loaded machine's lag
    /// between the two). At the default that is 14, still under a snooping switch's 15.</summary>
    private static double ClientBound(DiscoverPace pace) => Math.Floor(pace.MostIn(Second + SendLag));

    private static readonly TimeSpan SendLag = TimeSpan.FromMilliseconds(250);

    /// <summary>With the server's answers (each message answered at most once): answers to what the
    /// client sent in the second and up to two round trips before it.</summary>
    private static double AllBound(DiscoverPace pace) => Math.Floor(pace.MostIn(Second) + pace.MostIn(Second + 2 * RoundTrip));

    [SetUp]
    public void Root() => TwoHosts.RequireRoot();

    private record struct Seen(double Time, int Type, string Source);

    private const int Discover = 1, Offer = 2, Request = 3, Ack = 5;

    /// <summary>A capture of DHCP on the bridge for <see cref="Observed"/>, started and ready.</summary>
    private static Process Capture(DhcpLan lan)
    {
        var capture = lan.Track(TwoHosts.StartIn(lan.Server, "SockShim.PcapProbe", [DhcpLan.Bridge, "udp port 67 or udp port 68", Observed.TotalSeconds.ToString(CultureInfo.InvariantCulture), "dhcp"], redirectInput: true));
        Assert.That(Programs.Line(capture), Is.EqualTo("ready"), () => capture.StandardError.ReadToEnd());
        return capture;
    }

    /// <summary>Waits for the capture to end (its own 30 s), and what it saw; it must have dropped nothing.</summary>
    private static List<Seen> Packets(Process capture)
    {
        var output = capture.StandardOutput.ReadToEndAsync();
        Assert.That(capture.WaitForExit(TimeSpan.FromSeconds(Observed.TotalSeconds + 30)), Is.True, "the capture ends after its 30 s");
        var end = Regex.Match(output.Result, @"(?m)^end received (\d+) dropped (\d+)$");
        Assert.That(end.Success && end.Groups[2].Value == "0", Is.True, () => $"the capture dropped nothing: {output.Result} {capture.StandardError.ReadToEnd()}");
        return Regex.Matches(output.Result, @"(?m)^dhcp (\S+) (\d+) (\S+)$")
            .Select(m => new Seen(double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), int.Parse(m.Groups[2].Value), m.Groups[3].Value)).ToList();
    }

    /// <summary>The most packets in any one-second window [t, t + 1 s).</summary>
    private static int MostInASecond(IEnumerable<Seen> packets)
    {
        var t = packets.Select(p => p.Time).Order().ToList();
        int most = 0;
        for (int i = 0, j = 0; i < t.Count; i++)
        {
            while (j < t.Count && t[j] < t[i] + 1) j++;
            most = Math.Max(most, j - i);
        }
        return most;
    }

    private static bool FromClient(Seen p) => p.Type is not (Offer or Ack or 6);

    private static Process ScriptedServer(DhcpLan lan, uint lease, uint? t1)
    {
        var server = lan.Track(TwoHosts.StartIn(lan.Server, "SockShim.TestAgent",
            ["short-lease-dhcp-server", DhcpLan.Bridge, ServerId, "198.51.100.10", lease.ToString(), t1?.ToString() ?? "-"], redirectInput: true));
        Assert.That(Programs.Line(server), Is.EqualTo("serving"), () => server.StandardError.ReadToEnd());
        return server;
    }

    private static string Rates(List<Seen> packets) =>
        $"per second: client {MostInASecond(packets.Where(FromClient))}, DISCOVER {MostInASecond(packets.Where(p => p.Type == Discover))}, all {MostInASecond(packets)}; " +
        $"in all {packets.Count} ({packets.Count(p => p.Type == Discover)} DISCOVER, {packets.Count(p => p.Type == Request)} REQUEST)";

    /// <summary>A server whose every lease is 0 s: no lease is taken (under the 4 s floor) and
    /// each socket fails with the reason; a prefetch of 100 and a socket asked for again and again
    /// go on for 30 s, and the client's packets in any second stay within the bucket's DISCOVERs
    /// and the REQUESTs of their offers, all packets within those and their answers.
    /// An unpaced client sends the 100 DISCOVERs of its prefetch at once.</summary>
    /// <summary>A socket's DISCOVER that nobody answers is sent again on its lease machine's timer.
    /// The client thread is not woken when a socket starts an acquisition: it takes the machine
    /// over at the first reply, or by itself in time for the machine's first timer, and with no
    /// server only the timer brings it. The capture on the bridge sees the DISCOVER and its
    /// retransmission one FirstRetransmit apart (within its jitter); a server started only then
    /// still gives the socket its lease.</summary>
    [Test]
    [CancelAfter(100_000)]
    public void A_discover_nobody_answers_is_sent_again_on_time_and_the_socket_gets_its_lease()
    {
        using var lan = new DhcpLan(clients: 1);
        var capture = Capture(lan);
        DhcpTests.Echo(lan, 0);
        var agent = lan.Track(TwoHosts.StartIn(lan.Clients[0], "SockShim.TestAgent", ["sockets", "1", Peer, "tcp"], lan.Pool(), redirectInput: true));
        // The capture streams what it sees; it ends by itself after its 30 s, so this read ends.
        var discovers = new List<double>();
        string? line;
        while (discovers.Count < 2 && (line = capture.StandardOutput.ReadLine()) is not null)
        {
            var m = Regex.Match(line, @"^dhcp (\S+) (\d+) (\S+)$");
            if (m.Success && int.Parse(m.Groups[2].Value) == Discover) discovers.Add(double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture));
        }
        Assert.That(discovers, Has.Count.EqualTo(2), "with no server, the socket's DISCOVER went out and was sent again");
        var timing = new DhcpTiming();
        double gap = discovers[1] - discovers[0], first = timing.FirstRetransmit.TotalSeconds;
        // The machine's jitter is a quarter of the wait either way; a loaded machine's turn and
        // the capture's stamping may add a little.
        Assert.That(gap, Is.InRange(first * 0.75 - 0.05, first * 1.25 + SendLag.TotalSeconds),
            "the retransmission followed the machine's first timer, not the client thread's idle turn");
        lan.StartDnsmasq();
        var addresses = DhcpTests.Held(lan, agent, lan.Clients[0], 1);
        Assert.That(lan.Leases().Select(l => l.Address), Is.EquivalentTo(addresses), "dnsmasq leased the socket's address");
        var metrics = DhcpTests.Close(agent);
        Assert.That(metrics.GetValueOrDefault("sockshim.leases.acquired"), Is.EqualTo(1));
        capture.StandardInput.Close();
    }

    [Test]
    [CancelAfter(100_000)]
    public void Leases_of_0_s_are_refused_with_the_reason_and_the_client_keeps_to_its_pace()
    {
        using var lan = new DhcpLan(clients: 1);
        string host = lan.Clients[0];
        var server = ScriptedServer(lan, lease: 0, t1: null);
        var capture = Capture(lan);
        var agent = lan.Track(TwoHosts.StartIn(host, "SockShim.TestAgent", ["attempt-sockets", (Observed.TotalSeconds - 5).ToString(CultureInfo.InvariantCulture), Peer],
            lan.Pool(prefetch: 100, rate: DiscoverPace.DefaultRate), redirectInput: true));
        var stderr = agent.StandardError.ReadToEndAsync();
        var lines = new List<string>();
        string? line;
        while ((line = Programs.Line(agent)) is not null && line != "done") lines.Add(line);
        var packets = Packets(capture);
        var addresses = lan.AddressesOf(host);
        agent.StandardInput.Close();
        server.StandardInput.Close();

        var pace = new DiscoverPace(DiscoverPace.DefaultRate, TimeProvider.System);
        TestContext.Out.WriteLine($"0 s leases, pace {pace.Rate}/s burst {pace.Burst}: {Rates(packets)}; sockets tried {lines.Count}");
        Assert.Multiple(() =>
        {
            Assert.That(line, Is.EqualTo("done"), () => stderr.Result);
            Assert.That(lines, Is.Not.Empty.And.All.Match(@"^error \S+ SockShim: pool 'dhcp': no DHCP lease on interface eth0: server 192\.0\.2\.254 leased 198\.51\.100\.\d+ for 0 s, shorter than the 4 s a lease needs to be renewed before it ends \(RFC 2131 §4\.4\.5\)"),
                "every socket failed, saying why");
            Assert.That(addresses, Is.EqualTo(new[] { "192.0.2.1" }), "no lease of 0 s went on eth0");
            Assert.That(MostInASecond(packets.Where(FromClient)), Is.LessThanOrEqualTo(ClientBound(pace)), () => Rates(packets));
            Assert.That(MostInASecond(packets), Is.LessThanOrEqualTo(AllBound(pace)), () => Rates(packets));
            // Not quiet for another reason: the pace was used, close to its rate, all along.
            Assert.That(packets.Count(p => p.Type is Discover or Request), Is.GreaterThanOrEqualTo(0.8 * pace.Rate * (Observed.TotalSeconds - 5)), () => Rates(packets));
        });
    }

    /// <summary>A server that sends T1 = 0 with leases of 4 s, the floor: 10 sockets get leases
    /// of 4 s, renewed (T1 taken as half the lease, no earlier than 2 s) often enough that none is
    /// lost in 30 s, and the client's packets in any second stay within the acquisition's bound
    /// plus one renewal REQUEST per lease (T1 is at least 2 s, a renewal retransmission at least
    /// 1 s). With T1 = 0 taken at its word every ACK would start the next renewal at once.</summary>
    [Test]
    [CancelAfter(100_000)]
    public void T1_of_0_does_not_make_renewals_run_and_leases_at_the_floor_are_kept()
    {
        const int Sockets = 10;
        var timing = new DhcpTiming();
        uint lease = (uint)timing.MinLease.TotalSeconds;
        using var lan = new DhcpLan(clients: 1);
        string host = lan.Clients[0];
        var server = ScriptedServer(lan, lease, t1: 0);
        var capture = Capture(lan);
        var (agent, addresses) = DhcpTests.HoldSockets(lan, host, Sockets, lan.Pool(rate: DiscoverPace.DefaultRate), Peer, udp: true);
        var packets = Packets(capture);
        var used = DhcpTests.Use(agent);
        var onLink = lan.AddressesOf(host);
        var metrics = DhcpTests.Close(agent);
        server.StandardInput.Close();

        var pace = new DiscoverPace(DiscoverPace.DefaultRate, TimeProvider.System);
        var renewEvery = timing.MinRenewal < timing.MinRenewRetransmit ? timing.MinRenewal : timing.MinRenewRetransmit;
        double bound = ClientBound(pace) + Sockets * Math.Ceiling(Second / renewEvery);
        var renewals = packets.Where(p => p.Type == Request && p.Source.StartsWith("198.51.100.")).ToList();
        TestContext.Out.WriteLine($"T1 = 0, leases of {lease} s: {Rates(packets)}; renewal REQUESTs {renewals.Count}, most in a second {MostInASecond(renewals)}; bound {bound}");
        Assert.Multiple(() =>
        {
            Assert.That(addresses, Has.All.StartsWith("198.51.100.") & Is.Unique);
            Assert.That(used, Is.EquivalentTo(addresses.Select(a => $"ok {a}")), "no socket lost its lease in 30 s");
            Assert.That(onLink, Is.SupersetOf(addresses));
            Assert.That(metrics.GetValueOrDefault("sockshim.dhcp.expiries"), Is.Zero, "no lease was lost");
            Assert.That(MostInASecond(packets.Where(FromClient)), Is.LessThanOrEqualTo(bound), () => Rates(packets));
            // Kept means renewed: every lease at least once per lease time while held in the
            // capture (more than 20 s of its 30: the 10 leases take under 5 s at the pace).
            Assert.That(renewals.Count, Is.GreaterThanOrEqualTo(Sockets * Math.Floor(20.0 / lease)), () => Rates(packets));
        });
    }

    /// <summary>`--prefetch 500` against dnsmasq at a pace of 10 a second: no second of the 30
    /// holds more DISCOVERs than the bucket allows (burst + rate), and the prefetch fills at that
    /// pace: dnsmasq has leased at least 80% of rate × time / 2 (a DISCOVER and a REQUEST a lease).</summary>
    [Test]
    [CancelAfter(100_000)]
    public void A_prefetch_of_500_goes_out_at_the_configured_pace_and_fills_at_it()
    {
        const double Rate = 10;
        using var lan = new DhcpLan(clients: 1);
        string host = lan.Clients[0];
        lan.StartDnsmasq();
        var capture = Capture(lan);
        var (agent, addresses) = DhcpTests.HoldSockets(lan, host, 1, lan.Pool(prefetch: 500, rate: Rate), Peer, udp: true);
        var packets = Packets(capture);
        int leased = lan.Leases().Count;
        DhcpTests.Close(agent);

        var pace = new DiscoverPace(Rate, TimeProvider.System);
        var discovers = packets.Where(p => p.Type == Discover).ToList();
        double elapsed = discovers.Count == 0 ? 0 : packets.Max(p => p.Time) - discovers.Min(p => p.Time);
        TestContext.Out.WriteLine($"prefetch 500 at {Rate}/s (burst {pace.Burst}): {Rates(packets)}; leased {leased} in {elapsed:0.0} s");
        Assert.Multiple(() =>
        {
            Assert.That(MostInASecond(discovers), Is.LessThanOrEqualTo(pace.MostIn(Second)), () => Rates(packets));
            // Two tokens a lease: its DISCOVER and its REQUEST.
            Assert.That(leased, Is.GreaterThanOrEqualTo(0.8 * Rate / 2 * elapsed).And.LessThan(500), () => $"{Rates(packets)}; leased {leased} in {elapsed:0.0} s");
            Assert.That(elapsed, Is.GreaterThan(Observed.TotalSeconds - 5), "the DISCOVERs went on for the whole capture");
        });
    }
}
