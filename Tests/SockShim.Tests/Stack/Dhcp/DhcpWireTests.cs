using System.Net;
using SockShim.Stack.Dhcp;
using SockShim.Stack.Sources;
using SockShim.Stack.Wire;

namespace SockShim.Tests.Stack.Dhcp;

public class DhcpWireTests
{
    internal static readonly byte[] Mac = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];

    internal static DhcpMessage Ack(uint xid, string yiaddr, string server = "192.0.2.1", byte[]? clientId = null) => new()
    {
        Op = 2,
        MessageType = DhcpMessageType.Ack,
        TransactionId = xid,
        YourAddress = IPAddress.Parse(yiaddr),
        HardwareAddress = Mac,
        ServerId = IPAddress.Parse(server),
        LeaseSeconds = 3600,
        RenewalSeconds = 1800,
        RebindingSeconds = 3150,
        SubnetMask = IPAddress.Parse("255.255.255.0"),
        ClientId = clientId,
    };

    [Test]
    public void Every_field_survives_emit_and_parse()
    {
        var id = ClientIdentifier.For(0x01020304, Mac);
        var sent = Ack(0xdeadbeef, "198.51.100.23", clientId: id);
        sent.Flags = DhcpMessage.BroadcastFlag;
        sent.Seconds = 7;
        sent.ClientAddress = IPAddress.Parse("198.51.100.9");
        sent.RequestedAddress = IPAddress.Parse("198.51.100.23");
        sent.Text = "no address for you";
        sent.ParameterRequests = [1, 51, 54];
        sent.MaxMessageSize = 1500;
        var buffer = new byte[DhcpMessage.MaxEmitLength];
        int length = sent.Emit(buffer);

        Assert.That(DhcpMessage.TryParse(buffer.AsSpan(0, length), out var got, out var error), Is.True, error);
        Assert.Multiple(() =>
        {
            Assert.That(length, Is.GreaterThanOrEqualTo(300), "RFC 1542 minimum for relays");
            Assert.That(got.Op, Is.EqualTo(2));
            Assert.That(got.TransactionId, Is.EqualTo(0xdeadbeef));
            Assert.That(got.Flags, Is.EqualTo(DhcpMessage.BroadcastFlag));
            Assert.That(got.Seconds, Is.EqualTo(7));
            Assert.That(got.ClientAddress, Is.EqualTo(IPAddress.Parse("198.51.100.9")));
            Assert.That(got.YourAddress, Is.EqualTo(IPAddress.Parse("198.51.100.23")));
            Assert.That(got.HardwareAddress, Is.EqualTo(Mac));
            Assert.That(got.MessageType, Is.EqualTo(DhcpMessageType.Ack));
            Assert.That(got.ServerId, Is.EqualTo(IPAddress.Parse("192.0.2.1")));
            Assert.That(got.RequestedAddress, Is.EqualTo(IPAddress.Parse("198.51.100.23")));
            Assert.That(got.SubnetMask, Is.EqualTo(IPAddress.Parse("255.255.255.0")));
            Assert.That((got.LeaseSeconds, got.RenewalSeconds, got.RebindingSeconds), Is.EqualTo(((uint?)3600, (uint?)1800, (uint?)3150)));
            Assert.That(got.ClientId, Is.EqualTo(id));
            Assert.That(got.Text, Is.EqualTo("no address for you"));
            Assert.That(got.ParameterRequests, Is.EqualTo(new byte[] { 1, 51, 54 }));
            Assert.That(got.MaxMessageSize, Is.EqualTo(1500));
        });
    }

    [Test]
    public void Client_identifier_is_rfc4361_with_the_mac()
    {
        var id = ClientIdentifier.For(7, Mac);
        Assert.That(ClientIdentifier.Format(id), Is.EqualTo("ff:00:00:00:07:00:03:00:01:02:00:5e:10:20:30"));
    }

    private static byte[] Valid()
    {
        var buffer = new byte[DhcpMessage.MaxEmitLength];
        int n = Ack(42, "198.51.100.23", clientId: ClientIdentifier.For(1, Mac)).Emit(buffer);
        return buffer[..n];
    }

    [TestCase(0, "shorter than")]
    [TestCase(239, "shorter than")]
    public void Short_messages_are_refused(int length, string why)
    {
        Assert.That(DhcpMessage.TryParse(Valid().AsSpan(0, length), out _, out var error), Is.False);
        Assert.That(error, Does.Contain(why));
    }

    [Test]
    public void Foreign_and_malformed_messages_are_refused_with_a_reason()
    {
        var cases = new (Action<byte[]> Break, string Why)[]
        {
            (b => b[0] = 9, "op 9"),
            (b => b[1] = 6, "not Ethernet"),
            (b => b[236] = 0, "magic cookie"),
            (b => { b[240] = 53; b[241] = 2; }, "option 53"),
            (b => { b[240] = 54; b[241] = 200; }, "claims 200 bytes"),
            (b => { b[240] = 51; b[241] = 3; }, "a time is 4"),
        };
        foreach (var (breakIt, why) in cases)
        {
            var b = Valid();
            breakIt(b);
            Assert.That(DhcpMessage.TryParse(b, out _, out var error), Is.False, why);
            Assert.That(error, Does.Contain(why));
        }
        // An option whose length byte is missing at the very end.
        var cut = Valid()[..241];
        cut[240] = 54;
        Assert.That(DhcpMessage.TryParse(cut, out _, out var e2), Is.False);
        Assert.That(e2, Does.Contain("no length byte"));
    }

    /// <summary>Mutated, truncated and random inputs: the parser never throws, and a selecting
    /// lease machine fed whatever parses never throws and moves only on a well-formed OFFER of
    /// its own transaction.</summary>
    [Test]
    public void Fuzzed_input_never_throws_and_moves_a_machine_only_on_its_own_offer()
    {
        var random = new Random(20261126);
        var id = ClientIdentifier.For(9, Mac);
        var offer = Ack(42, "198.51.100.23", clientId: id);
        offer.MessageType = DhcpMessageType.Offer;
        var valid = new byte[DhcpMessage.MaxEmitLength];
        valid = valid[..offer.Emit(valid)];
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.Parse("2026-11-26T08:00:00Z"));
        int parsed = 0, accepted = 0;
        for (int i = 0; i < 200_000; i++)
        {
            byte[] input;
            switch (i % 4)
            {
                case 0: // bit flips in a valid message
                    input = (byte[])valid.Clone();
                    for (int k = random.Next(1, 8); k > 0; k--) input[random.Next(input.Length)] ^= (byte)(1 << random.Next(8));
                    break;
                case 1: // truncated
                    input = valid[..random.Next(valid.Length)];
                    break;
                case 2: // random options after a valid header
                    input = new byte[random.Next(240, 700)];
                    valid.AsSpan(0, 240).CopyTo(input);
                    random.NextBytes(input.AsSpan(240));
                    break;
                default: // noise
                    input = new byte[random.Next(0, 1500)];
                    random.NextBytes(input);
                    break;
            }
            if (!DhcpMessage.TryParse(input, out var m, out _)) continue;
            parsed++;
            var machine = new DhcpLeaseMachine(id, Mac, time, new DhcpTiming(), () => 42);
            machine.Start();
            var output = machine.Receive(m, IPAddress.Parse("192.0.2.1")); // the offer's server, as its source
            if (output.Event == DhcpLeaseEvent.Ignored) continue;
            accepted++;
            Assert.That(output.Event, Is.EqualTo(DhcpLeaseEvent.None), $"input {i}");
            Assert.That((m.MessageType, m.TransactionId, m.IsReply, machine.State), Is.EqualTo(((DhcpMessageType?)DhcpMessageType.Offer, 42u, true, DhcpLeaseState.Requesting)), $"input {i}");
            Assert.That(m.HardwareAddress, Is.EqualTo(Mac));
            Assert.That(output.Send!.RequestedAddress, Is.EqualTo(m.YourAddress));
        }
        Assert.That(parsed, Is.GreaterThan(10_000), "the fuzz must reach the option parser and the machine");
        Assert.That(accepted, Is.GreaterThan(100).And.LessThan(parsed), "some mutations keep a valid offer, most do not");
    }
}
