using System.Net;
using Microsoft.Extensions.Time.Testing;
using SockShim.Stack.Addressing;
using SockShim.Stack.Configuration;
using SockShim.Stack.Dhcp;
using SockShim.Stack.Wire;

namespace SockShim.Tests.Stack.Dhcp;

/// <summary>Which offered addresses a socket may get: the pure judgement, each rule alone, and
/// the lease machine skipping a refused offer for a later good one.</summary>
[CancelAfter(10_000)]
public class OfferCheckTests
{
    private static readonly IPAddress Server = IPAddress.Parse("198.51.100.250");
    private static readonly HostView Host = new([IPAddress.Parse("192.0.2.1"), IPAddress.Loopback], [IPAddress.Parse("192.0.2.254")]);

    // Ranges given as first-last, so only the mask (option 1) knows the subnet's ends.
    private static PoolDefinition Pool(string ranges = "198.51.100.0-198.51.100.255", string? exclude = null)
    {
        static AddressRange Parse(string t) => AddressRange.TryParse(t, out var r, out var e) ? r : throw new ArgumentException(e);
        return new PoolDefinition("t", ranges.Split(',').Select(Parse).ToList(), (exclude is null ? [] : exclude.Split(',')).Select(Parse).ToList(), AllocationStrategy.Sequential, 4096);
    }

    private static OfferRejection Judge(string address, string? mask = "255.255.255.0", string[]? routers = null, string? source = "192.0.2.254", PoolDefinition? pool = null)
    {
        var facts = new OfferFacts(IPAddress.Parse(address), Server, source is null ? null : IPAddress.Parse(source),
            mask is null ? null : IPAddress.Parse(mask), (routers ?? ["198.51.100.1"]).Select(IPAddress.Parse).ToList());
        var (reason, why) = OfferCheck.Judge(facts, pool ?? Pool(), Host);
        Assert.That(why.Length > 0, Is.EqualTo(reason != OfferRejection.None), "a refusal says why, an acceptance says nothing");
        if (reason != OfferRejection.None) Assert.That(why, Does.Contain(address), "the reason names the address");
        return reason;
    }

    [Test]
    public void An_ordinary_address_of_the_pool_is_accepted() =>
        Assert.That(Judge("198.51.100.23"), Is.EqualTo(OfferRejection.None));

    [Test]
    public void The_routers_of_option_3_are_refused()
    {
        Assert.That(Judge("198.51.100.1"), Is.EqualTo(OfferRejection.Router));
        Assert.That(Judge("198.51.100.7", routers: ["198.51.100.1", "198.51.100.7"]), Is.EqualTo(OfferRejection.Router), "any router of the list");
    }

    [Test]
    public void A_gateway_of_the_hosts_routes_is_refused_even_when_the_reply_names_another_router() =>
        Assert.That(Judge("192.0.2.254", pool: Pool("192.0.2.0-192.0.2.255")), Is.EqualTo(OfferRejection.Router));

    [Test]
    public void The_servers_own_address_is_refused_as_server_id_and_as_source()
    {
        Assert.That(Judge(Server.ToString()), Is.EqualTo(OfferRejection.Server), "the server id");
        Assert.That(Judge("198.51.100.40", source: "198.51.100.40"), Is.EqualTo(OfferRejection.Server), "the packet's source");
    }

    [Test]
    public void An_address_the_host_has_is_refused_even_inside_the_pool() =>
        Assert.That(Judge("192.0.2.1", pool: Pool("192.0.2.0-192.0.2.255")), Is.EqualTo(OfferRejection.HostAddress));

    [Test]
    public void Network_and_broadcast_addresses_of_the_offers_mask_are_refused()
    {
        Assert.That(Judge("198.51.100.0"), Is.EqualTo(OfferRejection.NetworkAddress));
        Assert.That(Judge("198.51.100.255"), Is.EqualTo(OfferRejection.BroadcastAddress));
        Assert.That(Judge("198.51.100.64", mask: "255.255.255.192"), Is.EqualTo(OfferRejection.NetworkAddress), "a /26 inside the pool's /24");
        Assert.That(Judge("198.51.100.127", mask: "255.255.255.192"), Is.EqualTo(OfferRejection.BroadcastAddress));
        Assert.That(Judge("198.51.100.64", mask: "255.255.255.0"), Is.EqualTo(OfferRejection.None), "inside a /24 it is a host");
    }

    [Test]
    public void Without_a_mask_a_pool_range_that_is_one_prefix_gives_the_ends()
    {
        Assert.That(Judge("198.51.100.0", mask: null), Is.EqualTo(OfferRejection.NetworkAddress));
        Assert.That(Judge("198.51.100.255", mask: null), Is.EqualTo(OfferRejection.BroadcastAddress));
        Assert.That(Judge("198.51.100.0", mask: null, pool: Pool("198.51.100.0-198.51.100.100")), Is.EqualTo(OfferRejection.None),
            "a range that is no prefix says nothing about the subnet");
    }

    [Test]
    public void A_31_or_32_bit_mask_or_a_broken_mask_makes_no_network_address()
    {
        Assert.That(Judge("198.51.100.22", mask: "255.255.255.254"), Is.EqualTo(OfferRejection.None), "RFC 3021: both ends of a /31 are hosts");
        Assert.That(Judge("198.51.100.22", mask: "255.0.255.0"), Is.EqualTo(OfferRejection.None), "a non-contiguous mask is ignored");
        Assert.That(Judge("198.51.100.22", mask: "0.0.0.0"), Is.EqualTo(OfferRejection.None), "a /0 is ignored");
    }

    [Test]
    public void Addresses_outside_the_ranges_or_excluded_are_refused_with_the_fix()
    {
        Assert.That(Judge("203.0.113.5"), Is.EqualTo(OfferRejection.OutsidePool));
        Assert.That(Judge("198.51.100.5", pool: Pool("198.51.100.0-198.51.100.255", "198.51.100.0-198.51.100.9")), Is.EqualTo(OfferRejection.OutsidePool));
        var (_, why) = OfferCheck.Judge(new OfferFacts(IPAddress.Parse("203.0.113.5"), Server, null, null, []), Pool(), Host);
        Assert.That(why, Does.Contain("198.51.100.0/24").And.Contain("set the pool's ranges"));
        Assert.That(Judge("0.0.0.0"), Is.EqualTo(OfferRejection.OutsidePool));
    }

    [Test]
    public void Option_3_survives_the_wire_and_a_malformed_one_is_rejected()
    {
        var m = DhcpWireTests.Ack(7, "198.51.100.23", "198.51.100.250", [1, 2, 3]);
        m.Routers = [IPAddress.Parse("198.51.100.1"), IPAddress.Parse("198.51.100.2")];
        var buffer = new byte[DhcpMessage.MaxEmitLength];
        int n = m.Emit(buffer);
        Assert.That(DhcpMessage.TryParse(buffer.AsSpan(0, n), out var back, out var error), Is.True, error);
        Assert.That(back.Routers, Is.EqualTo(m.Routers));
        int at = buffer.AsSpan(DhcpMessage.MinLength, n - DhcpMessage.MinLength).IndexOf(new byte[] { 3, 8 }) + DhcpMessage.MinLength;
        buffer[at + 1] = 6; // 6 bytes: not a list of IPv4 addresses
        Assert.That(DhcpMessage.TryParse(buffer.AsSpan(0, n), out _, out error), Is.False);
        Assert.That(error, Does.Contain("option 3"));
    }

    [Test]
    public void A_refused_offer_leaves_the_machine_selecting_and_a_later_good_offer_wins()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-26T08:00:00Z"));
        uint xid = 100;
        var id = ClientIdentifier.For(5, DhcpWireTests.Mac);
        var m = new DhcpLeaseMachine(id, DhcpWireTests.Mac, time, new DhcpTiming(), () => xid++, new Random(1))
        {
            Vet = (offer, source) => OfferCheck.Judge(OfferFacts.Of(offer, source), Pool(), Host) is var (r, why) && r != OfferRejection.None ? why : null,
        };
        m.Start();
        var rogue = DhcpWireTests.Ack(m.TransactionId, "198.51.100.1", "198.51.100.99", id);
        rogue.MessageType = DhcpMessageType.Offer;
        rogue.Routers = [IPAddress.Parse("198.51.100.1")];
        var ignored = m.Receive(rogue, IPAddress.Parse("198.51.100.99"));
        Assert.That(ignored.Event, Is.EqualTo(DhcpLeaseEvent.Ignored));
        Assert.That(ignored.Reason, Does.Contain("router"));
        Assert.That(ignored.Send, Is.Null, "no REQUEST for the rogue's offer");
        Assert.That(m.State, Is.EqualTo(DhcpLeaseState.Selecting));

        var good = DhcpWireTests.Ack(m.TransactionId, "198.51.100.23", Server.ToString(), id);
        good.MessageType = DhcpMessageType.Offer;
        var request = m.Receive(good, Server);
        Assert.That(request.Send!.MessageType, Is.EqualTo(DhcpMessageType.Request));
        Assert.That(request.Send.RequestedAddress, Is.EqualTo(IPAddress.Parse("198.51.100.23")));
        Assert.That(request.Send.ServerId, Is.EqualTo(Server));
        Assert.That(request.Send.ParameterRequests, Does.Contain((byte)1).And.Contain((byte)3), "the mask and routers are asked for");
    }
}
