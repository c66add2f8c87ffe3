using System.Text.Json;
using System.Text.Json.Serialization;
using SockShim.Stack.Addressing;
using SockShim.Stack.Configuration;

namespace SockShim.Tests.Stack;

/// <summary>A pool's description, written beside its table and sent by the helper: the text is the
/// one the reflection serializer wrote before (so files written by earlier versions still read), and
/// what another account could write there is refused whole rather than half believed.</summary>
public class PoolDescriptionTests
{
    // How the description was written until 2026-12-05: the reflection serializer, enums as names.
    private static readonly JsonSerializerOptions Serializer = new() { Converters = { new JsonStringEnumConverter() } };

    private static readonly PoolDescription[] Samples =
    [
        new() { Name = "loopback", Source = SourceKind.Static, Provisioner = ProvisionerKind.Loopback, Ranges = ["127.100.0.0/16"], Strategy = AllocationStrategy.Random, MaxAddresses = 65536 },
        new()
        {
            Name = "dhcp \"lab\" é", Source = SourceKind.Dhcp, Provisioner = ProvisionerKind.Netlink, Interface = "eth0", Ranges = ["198.51.100.0/24", "203.0.113.10-203.0.113.20"],
            Exclude = ["198.51.100.0", "198.51.100.255"], Strategy = AllocationStrategy.Sequential, MaxAddresses = 265, Dscp = 46,
        },
    ];

    [Test]
    public void The_text_is_the_serializers_and_reads_back_the_same()
    {
        foreach (var d in Samples)
        {
            string json = d.ToJson();
            Assert.That(json, Is.EqualTo(JsonSerializer.Serialize(d, Serializer)), "the same text as before");
            var read = PoolDescription.FromJson(json);
            Assert.That(read, Is.Not.Null, json);
            Assert.That(read!.ToJson(), Is.EqualTo(json), "every field read back");
            Assert.That(read.Definition()?.Count, Is.EqualTo(d.Definition()?.Count));
        }
        // Written by the serializer, read here (a file from before this change).
        var old = PoolDescription.FromJson(JsonSerializer.Serialize(Samples[1], Serializer));
        Assert.That(old?.Interface, Is.EqualTo("eth0"));
        Assert.That(old?.Dscp, Is.EqualTo(46));
        Assert.That(old?.Source, Is.EqualTo(SourceKind.Dhcp));
        // A helper of the last version sent enums as numbers (the serializer without its converter).
        var numbers = PoolDescription.FromJson(JsonSerializer.Serialize(Samples[1]));
        Assert.That((numbers?.Source, numbers?.Provisioner, numbers?.Strategy), Is.EqualTo(((SourceKind?)SourceKind.Dhcp, (ProvisionerKind?)ProvisionerKind.Netlink, (AllocationStrategy?)AllocationStrategy.Sequential)));
    }

    [Test]
    public void Every_character_is_quoted_as_the_serializer_quotes_it()
    {
        // Each UTF-16 unit alone (so every lone surrogate too), then a pair and a pair cut in two.
        var texts = Enumerable.Range(0, 0x10000).Select(c => $"a{(char)c}b").Concat(["x\U0001F600y", "x\uD83Dy", "x\uDE00y", "\uDE00\uD83D"]);
        var differ = texts.Where(t => PoolDescription.Quote(t) != JsonSerializer.Serialize(t))
            .Select(t => $"{string.Join(" ", t.Select(c => ((int)c).ToString("X4")))}: {PoolDescription.Quote(t)} vs {JsonSerializer.Serialize(t)}").Take(5).ToList();
        Assert.That(differ, Is.Empty);
    }

    [Test]
    public void A_lone_surrogate_in_a_file_is_no_description_rather_than_an_exception() =>
        Assert.That(PoolDescription.FromJson("{\"Name\":\"\\uD800\",\"Ranges\":[\"127.1.0.0/24\"],\"MaxAddresses\":256}"), Is.Null);

    [TestCase("not json")]
    [TestCase("[1, 2]")]
    [TestCase("{\"Ranges\": \"127.0.0.0/8\"}")]
    [TestCase("{\"Ranges\": [\"127.0.0.0/8\", 7]}")]
    [TestCase("{\"Source\": \"Bogus\"}")]
    [TestCase("{\"Source\": \"1\"}")]
    [TestCase("{\"Source\": 99}")]
    [TestCase("{\"Source\": 1.5}")]
    [TestCase("{\"MaxAddresses\": \"7\"}")]
    [TestCase("{\"MaxAddresses\": 1e40}")]
    [TestCase("{\"Name\": null}")]
    [TestCase("{\"Dscp\": \"46\"}")]
    public void A_description_with_a_value_it_cannot_have_is_none(string json) =>
        Assert.That(PoolDescription.FromJson(json), Is.Null);

    [Test]
    public void Properties_it_does_not_know_are_ignored_and_missing_ones_keep_their_defaults()
    {
        var d = PoolDescription.FromJson("{\"Name\":\"p\",\"Future\":{\"x\":1},\"Ranges\":[\"127.1.0.0/24\"],\"MaxAddresses\":256}");
        Assert.That(d, Is.Not.Null);
        Assert.That((d!.Name, d.Interface, d.Dscp, d.Exclude.Count, d.Strategy), Is.EqualTo(("p", (string?)null, (int?)null, 0, default(AllocationStrategy))));
        Assert.That(d.Definition()?.Count, Is.EqualTo(256));
    }
}
