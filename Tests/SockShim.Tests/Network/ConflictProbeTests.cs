using System.Diagnostics;
using System.Net;
using System.Net.NetworkInformation;
using SockShim.Stack.Dhcp;
using SockShim.Stack.Provisioning;
using SockShim.Stack.Wire;

namespace SockShim.Tests.Network;

/// <summary>
/// RFC 5227 §2.1.1 on a real link (a veth pair made for the test): while SockShim probes an
/// address, another station's ARP probe for the same address (sender 0.0.0.0) is a conflict, so
/// two hosts about to take one address both back off; an ordinary request for it (who has it?)
/// is not.
/// </summary>
[NonParallelizable]
public class ConflictProbeTests
{
    private const string Ours = "sscp0", Theirs = "sscp1";
    private static readonly IPAddress Probed = IPAddress.Parse("192.0.2.77");
    private static readonly PhysicalAddress OtherMac = PhysicalAddress.Parse("02-00-00-00-00-42");

    [SetUp]
    public void Link()
    {
        TwoHosts.RequireRoot();
        TwoHosts.Quiet("ip", "link", "del", Ours);
        TwoHosts.Ip($"link add {Ours} type veth peer name {Theirs}");
        TwoHosts.Ip($"link set {Ours} up");
        TwoHosts.Ip($"link set {Theirs} up");
    }

    [TearDown]
    public void Unlink() => TwoHosts.Quiet("ip", "link", "del", Ours);

    [TestCase(true, ExpectedResult = true)]
    [TestCase(false, ExpectedResult = false)]
    [CancelAfter(30_000)]
    public bool Another_stations_probe_for_the_address_is_a_conflict_and_its_request_is_not(bool otherProbes)
    {
        var mac = HostFacts.HardwareAddress(Ours)!;
        using var probe = ConflictProbe.Open(Ours, mac, out string why) ?? throw new AssertionException(why);
        using var other = LinkSocket.Open(Theirs, 0, "the other station's socket", out why) ?? throw new AssertionException(why);
        bool? conflict = null;
        probe.Start(Probed, DateTimeOffset.UtcNow.AddSeconds(1), c => conflict = c);
        // The other station: a probe of its own (sender 0.0.0.0), or a request from its own address.
        var frame = ArpFrames.Request(OtherMac, otherProbes ? IPAddress.Any : IPAddress.Parse("192.0.2.9"), Probed);
        Assert.That(other.Send(frame), Is.Zero, "the other station's frame went out");
        var clock = Stopwatch.StartNew();
        while (conflict is null && clock.Elapsed < TimeSpan.FromSeconds(5))
        {
            probe.Drain();
            probe.Settle(DateTimeOffset.UtcNow, DateTimeOffset.MaxValue);
            Thread.Sleep(5); // the probe's socket is non-blocking: read again shortly
        }
        Assert.That(conflict, Is.Not.Null, "the probe ended, by a conflict or by its deadline");
        if (conflict == false) Assert.That(clock.Elapsed, Is.GreaterThan(TimeSpan.FromMilliseconds(900)), "a free address is known only at the deadline");
        return conflict!.Value;
    }
}
