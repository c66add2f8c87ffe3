using System.Diagnostics;
using System.Text.Json;
using SockShim.Interceptor.Compare;

namespace SockShim.Tests.Examples;

/// <summary>`sockshim compare` on each example (SharpPcap on loopback, so root), and on a command
/// that really does differ. The tables come from the CLI; the assertions from the API tests use.</summary>
[NonParallelizable]
public class CompareTests() : EchoServerFixture("127.106.0.0/24", "compare")
{

    // The captures need root; the pool and the echo server are the base fixture's.
    [OneTimeSetUp]
    public void Root() => Network.TwoHosts.RequireRoot();

    private ComparisonReport Compare(string[] command, Dictionary<string, string?>? settings = null) =>
        Comparison.Run(new ComparisonOptions
        {
            Command = command,
            Settings = new(settings ?? new()) { ["Pool"] = "127.106.0.0/24", ["StateDir"] = _pool.StateDirectory, ["PoolName"] = "compare" },
            Filter = $"port {_serverEndpoint.Split(':')[1]}",
        });

    private static string[] Dotnet(string program, params string[] args) => ["dotnet", Programs.PathOf(program), .. args];

    [Test]
    public void Tuple_sockets_same_behaviour_ten_addresses_against_one()
    {
        var r = Compare(Dotnet("TupleClient", "--server", _serverEndpoint, "--count", "10"));
        Assert.That(r.Differences, Is.Empty);
        Assert.That((r.Unpatched.DistinctLocalAddresses, r.Patched.DistinctLocalAddresses), Is.EqualTo((1, 10)));
        Assert.That((r.Unpatched.Connections, r.Patched.Connections), Is.EqualTo((10, 10)));
    }

    [Test]
    public void The_unmodified_app_same_behaviour_eleven_addresses_against_one()
    {
        var r = Compare(Dotnet("LegacyApp", _serverEndpoint));
        Assert.That(r.Differences, Is.Empty);
        Assert.That((r.Unpatched.DistinctLocalAddresses, r.Patched.DistinctLocalAddresses), Is.EqualTo((1, 11)));
        Assert.That(r.Patched.Datagrams, Is.EqualTo(3));
    }

    [Test]
    public void The_attribute_example_same_behaviour_and_only_marked_sockets_move()
    {
        var r = Compare(Dotnet("AttributeApp", _serverEndpoint), new() { ["Mode"] = "attribute" });
        Assert.That(r.Differences, Is.Empty);
        // Five marked sockets with their own addresses, two from the host's.
        Assert.That((r.Unpatched.DistinctLocalAddresses, r.Patched.DistinctLocalAddresses), Is.EqualTo((1, 6)));
        Assert.That(r.Patched.LocalAddresses, Does.Contain("127.0.0.1"));
    }

    [Test]
    public void The_voip_calls_carry_ef_on_the_wire_from_their_own_addresses()
    {
        var r = Compare(Dotnet("VoipCalls", _serverEndpoint, "--calls", "4", "--packets", "10"), new() { ["Mode"] = "attribute", ["Dscp"] = "EF" });
        Assert.That(r.Differences, Is.Empty);
        var media = r.Patched.Flows.Where(f => f.Protocol == "udp").ToList();
        Assert.That(media, Has.Count.EqualTo(4));
        Assert.That(media.Select(f => f.Local.Split(':')[0]).Distinct().Count(), Is.EqualTo(4), "a call, an address");
        Assert.That(media.Select(f => f.Dscp), Has.All.EqualTo(new[] { 46 }), "EF on every media packet");
        Assert.That(media.Select(f => f.PacketsOut), Has.All.EqualTo(10));
        Assert.That(r.Patched.Flows.Single(f => f.Protocol == "tcp").Dscp, Is.EqualTo(new[] { 0 }), "signalling keeps the host's address and class");
        Assert.That(r.Unpatched.Flows.SelectMany(f => f.Dscp), Has.All.EqualTo(0));
    }

    [Test]
    public void A_real_difference_is_reported_and_the_cli_exits_1_with_json()
    {
        // Output that depends on something other than the address: a random number per run.
        string[] command = ["bash", "-c", $"echo draw $RANDOM$RANDOM; exec dotnet {Programs.PathOf("TupleClient")} --server {_serverEndpoint} --count 2"];
        var (exit, output, error) = Programs.Run("SockShim.Interceptor",
            ["compare", "--json", "--filter", $"port {_serverEndpoint.Split(':')[1]}", "--pool", "127.106.0.0/24", "--state-dir", _pool.StateDirectory, "--", .. command]);
        Assert.That(exit, Is.EqualTo(1), error);
        using var json = JsonDocument.Parse(output);
        var differences = json.RootElement.GetProperty("differences").EnumerateArray().Select(e => e.GetString()).ToList();
        Assert.That(differences, Has.Some.StartsWith("output (addresses masked) differs from line 1: 'draw "));
        Assert.That(json.RootElement.GetProperty("patched").GetProperty("distinctLocalAddresses").GetInt32(), Is.EqualTo(2));
        Assert.That(json.RootElement.GetProperty("same").GetBoolean(), Is.False);
    }
}
