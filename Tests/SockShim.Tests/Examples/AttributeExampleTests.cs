using System.Diagnostics;
using System.Text.RegularExpressions;
using Mono.Cecil;
using SockShim.Interceptor.Weaving.Scopes;

namespace SockShim.Tests.Examples;

/// <summary>The attribute opt-in, end to end: Examples/AttributeApp is woven at build time
/// (SockShim.Attributes.targets) and run unmodified under `sockshim run --mode attribute`; the
/// echo server in another process reports where each connection came from.</summary>
[NonParallelizable]
public class AttributeExampleTests() : EchoServerFixture("127.105.0.0/24", "attribute")
{
    private static Dictionary<string, string> Sockets(string output) =>
        Regex.Matches(output, @"^(.+): (\S+)$", RegexOptions.Multiline).ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);

    [Test]
    public void Sockets_made_in_marked_flows_get_their_own_addresses_and_others_keep_the_hosts()
    {
        var (exit, output, error) = Programs.Run("SockShim.Interceptor",
            ["run", "--mode", "attribute", "--", "dotnet", Programs.PathOf("AttributeApp"), _serverEndpoint], _pool.Environment, TimeSpan.FromMinutes(2));
        Assert.That(exit, Is.Zero, output + error);
        var sockets = Sockets(output);
        var marked = sockets.Where(s => s.Key.StartsWith("marked")).ToList();
        Assert.That(marked.Select(s => s.Key), Is.EquivalentTo(new[]
        {
            "marked, before an await", "marked, after an await", "marked, in a method it called", "marked, in a task it started", "marked class",
        }));
        Assert.That(marked.Select(s => s.Value), Has.All.StartsWith("127.105.0."), "each from the pool");
        Assert.That(marked.Select(s => s.Value), Is.Unique);
        Assert.That(sockets["outside, before"], Is.EqualTo("127.0.0.1"));
        Assert.That(sockets["outside, after"], Is.EqualTo("127.0.0.1"), "the scope does not leak back to the caller");
    }

    /// <summary>The app's first socket is made in a marked flow, so nothing has wired SockShim
    /// before it (`sockshim run -- dotnet app.dll` starts it without the startup hook): its
    /// creation must wire SockShim, or its connect (which wires it too late to know the socket was
    /// marked) would leave it the host's address.</summary>
    [Test]
    public void A_marked_socket_that_is_the_apps_first_gets_its_own_address()
    {
        var env = new Dictionary<string, string>(_pool.Environment) { ["SOCKSHIM_TRACE_STARTUP"] = "1" };
        var (exit, output, error) = Programs.Run("SockShim.Interceptor",
            ["run", "--verbose", "--mode", "attribute", "--", "dotnet", Programs.PathOf("AttributeApp"), _serverEndpoint, "--marked-first"], env, TimeSpan.FromMinutes(2));
        Assert.That(exit, Is.Zero, output + error);
        Assert.That(error, Does.Contain("sockshim: start: no startup hook").And.Contain("slots set at the first use of a socket"), error);
        var sockets = Sockets(output);
        Assert.That(sockets.Keys, Does.Not.Contain("outside, before"));
        Assert.That(sockets["marked, before an await"], Does.StartWith("127.105.0."), "the first socket of the app, made in a marked flow: " + output);
        var marked = sockets.Where(s => s.Key.StartsWith("marked")).Select(s => s.Value).ToList();
        Assert.That(marked, Has.Count.EqualTo(5).And.All.StartsWith("127.105.0."), output);
        Assert.That(marked, Is.Unique);
        Assert.That(sockets["outside, after"], Is.EqualTo("127.0.0.1"));
    }

    [Test]
    public void Without_the_launcher_every_socket_keeps_the_hosts_address()
    {
        var (exit, output, _) = Programs.Run("AttributeApp", [_serverEndpoint], _pool.Environment);
        Assert.That(exit, Is.Zero);
        var sockets = Sockets(output);
        Assert.That(sockets, Has.Count.EqualTo(7));
        Assert.That(sockets.Values, Has.All.EqualTo("127.0.0.1"));
    }

    [Test]
    public void Marked_methods_and_only_they_are_wrapped_in_a_scope_once()
    {
        using var module = ModuleDefinition.ReadModule(Programs.PathOf("AttributeApp"));
        bool Wrapped(MethodDefinition m) => m.Body.Instructions.Any(i => i.Operand is MethodReference r && r.Name == "Begin" && r.DeclaringType.Name == "AddressScope");
        var calls = module.GetType("Calls");
        Assert.That(Wrapped(calls.Methods.Single(m => m.Name == "Marked")), Is.True);
        Assert.That(Wrapped(calls.Methods.Single(m => m.Name == "Report")), Is.False);
        Assert.That(Wrapped(module.GetType("Voice").Methods.Single(m => m.Name == "Call")), Is.True, "through its class");
        Assert.That(calls.Methods.Single(m => m.Name == "Marked").Body.ExceptionHandlers, Has.Count.EqualTo(1));

        // Weaving again changes nothing: the assembly carries its mark.
        string copy = Path.Combine(_pool.StateDirectory, "again.dll");
        File.Copy(Programs.PathOf("AttributeApp"), copy);
        Assert.That(ScopeWeaver.Weave(copy), Is.Empty);
    }
}
