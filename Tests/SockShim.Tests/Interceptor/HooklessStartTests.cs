using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace SockShim.Tests.Interceptor;

/// <summary>
/// `sockshim run` without a startup hook (issue 20): where the launcher proves that the app will
/// load the woven System.Net.Sockets, the woven copy wires itself at the first socket and the app
/// starts as it would plainly; where it cannot, the startup hook stays and still refuses a bypass.
/// SOCKSHIM_TRACE_STARTUP=1 makes the wiring say which way it ran; the echo server in another
/// process says where each socket came from.
/// </summary>
[NonParallelizable]
public class HooklessStartTests() : EchoServerFixture("127.107.0.0/24", "hookless")
{
    private string _scratch = "";

    [OneTimeSetUp]
    public void MakeScratch() => _scratch = Directory.CreateTempSubdirectory("sockshim-hookless-").FullName;

    [OneTimeTearDown]
    public void RemoveScratch() => Directory.Delete(_scratch, recursive: true);

    private (int Exit, string Out, string Err) Sockshim(IEnumerable<string> args, Dictionary<string, string>? extra = null)
    {
        var env = new Dictionary<string, string>(_pool.Environment) { ["SOCKSHIM_TRACE_STARTUP"] = "1" };
        foreach (var (k, v) in extra ?? []) env[k] = v;
        return Programs.Run("SockShim.Interceptor", args, env, TimeSpan.FromMinutes(3));
    }

    private const string NoHook = "sockshim: start: no startup hook";
    private const string WiredAtFirstSocket = "slots set at the first use of a socket";
    private const string WiredByHook = "slots set by the startup hook";

    private List<IPAddress> Seen(string output) =>
        Regex.Matches(output, @"^api=(\S+) local=\S+ seen=(\S+)$", RegexOptions.Multiline).Select(m => IPEndPoint.Parse(m.Groups[2].Value).Address).ToList();

    [Test]
    public void Dotnet_app_dll_starts_without_the_hook_and_every_api_still_gets_its_own_address()
    {
        var (exit, output, error) = Sockshim(["run", "--verbose", "--mode", "all", "--", "dotnet", Programs.PathOf("LegacyApp"), _serverEndpoint]);
        Assert.That(exit, Is.Zero, output + error);
        Assert.That(error, Does.Contain(NoHook), "the launcher proved the woven copy loads");
        Assert.That(error, Does.Not.Contain("DOTNET_STARTUP_HOOKS="), "no startup hook was set");
        Assert.That(error, Does.Contain(WiredAtFirstSocket).And.Not.Contain(WiredByHook), "the woven copy wired itself");
        var seen = Seen(output);
        Assert.That(seen, Has.Count.EqualTo(11), output);
        Assert.That(seen.All(_pool.Pool.Definition.Contains), Is.True, "every socket came from the pool: " + output);
        Assert.That(seen.Distinct().Count(), Is.EqualTo(seen.Count), "one address per socket");
        Assert.That(_pool.HeldSlots(), Is.Zero, "every address released when the app ended");
    }

    [Test]
    public void An_apphost_starts_without_the_hook_too()
    {
        string apphost = Path.ChangeExtension(Programs.PathOf("LegacyApp"), null);
        Assert.That(File.Exists(apphost), Is.True, "LegacyApp's apphost is built beside the tests");
        var (exit, output, error) = Sockshim(["run", "--verbose", "--mode", "all", "--", apphost, _serverEndpoint]);
        Assert.That(exit, Is.Zero, output + error);
        Assert.That(error, Does.Contain(NoHook).And.Contain(WiredAtFirstSocket));
        var seen = Seen(output);
        Assert.That(seen, Has.Count.EqualTo(11), output);
        Assert.That(seen.All(_pool.Pool.Definition.Contains) && seen.Distinct().Count() == seen.Count, Is.True, output);
    }

    [Test]
    public void An_app_that_opens_no_socket_never_loads_sockshim()
    {
        // LegacyApp without arguments prints its usage and exits 2, before any socket.
        var (exit, output, error) = Sockshim(["run", "--verbose", "--", "dotnet", Programs.PathOf("LegacyApp")]);
        Assert.That(exit, Is.EqualTo(2), output + error);
        Assert.That(error, Does.Contain(NoHook));
        Assert.That(error, Does.Not.Contain(WiredAtFirstSocket).And.Not.Contain(WiredByHook), "nothing of SockShim ran in the app");
    }

    /// <summary>A copy of LegacyApp whose deps.json lists a System.Net.Sockets.dll of its own with a
    /// higher assembly version than the framework's: the host takes the app's (the runtime's own,
    /// unwoven, copied in). Unproved, so the startup hook stays, and it refuses the bypass.</summary>
    [Test]
    public void An_app_local_system_net_sockets_that_outranks_the_framework_keeps_the_hook_which_refuses()
    {
        string app = CopyOfLegacyApp("app-local");
        string framework = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        File.Copy(Path.Combine(framework, "System.Net.Sockets.dll"), Path.Combine(app, "System.Net.Sockets.dll"));
        string deps = Path.Combine(app, "LegacyApp.deps.json");
        var json = JsonNode.Parse(File.ReadAllText(deps))!;
        var target = json["targets"]!.AsObject().First().Value!.AsObject();
        var self = target.First(p => p.Key.StartsWith("LegacyApp/")).Value!.AsObject();
        var runtime = self["runtime"] as JsonObject ?? (JsonObject)(self["runtime"] = new JsonObject());
        runtime["System.Net.Sockets.dll"] = new JsonObject { ["assemblyVersion"] = "99.0.0.0", ["fileVersion"] = "99.0.0.0" };
        File.WriteAllText(deps, json.ToJsonString());

        var (exit, output, error) = Sockshim(["run", "--verbose", "--", "dotnet", Path.Combine(app, "LegacyApp.dll"), _serverEndpoint]);
        Assert.That(error, Does.Contain("start: with the startup hook (").And.Contain("has a System.Net.Sockets.dll of its own"), error);
        Assert.That(exit, Is.EqualTo(97), output + error);
        Assert.That(error, Does.Contain("the woven System.Net.Sockets was not loaded"));
        Assert.That(Seen(output), Is.Empty, "no socket left unpatched");
    }

    [Test]
    public void A_users_own_additional_deps_keep_the_hook_and_the_app_is_served()
    {
        string empty = Directory.CreateDirectory(Path.Combine(_scratch, "deps")).FullName;
        var (exit, output, error) = Sockshim(["run", "--verbose", "--mode", "all", "--", "dotnet", Programs.PathOf("LegacyApp"), _serverEndpoint],
            new() { ["DOTNET_ADDITIONAL_DEPS"] = empty });
        Assert.That(exit, Is.Zero, output + error);
        Assert.That(error, Does.Contain("start: with the startup hook (the environment already sets DOTNET_ADDITIONAL_DEPS"));
        Assert.That(error, Does.Contain(WiredByHook));
        Assert.That(Seen(output).All(_pool.Pool.Definition.Contains), Is.True, output);
    }

    [Test]
    public void A_script_keeps_the_hook()
    {
        string script = Path.Combine(_scratch, "start.sh");
        File.WriteAllText(script, $"#!/bin/sh\nexec dotnet '{Programs.PathOf("LegacyApp")}' \"$@\"\n");
        File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var (exit, output, error) = Sockshim(["run", "--verbose", "--mode", "all", "--", script, _serverEndpoint]);
        Assert.That(exit, Is.Zero, output + error);
        Assert.That(error, Does.Contain("start: with the startup hook (").And.Contain(WiredByHook));
        Assert.That(Seen(output).All(_pool.Pool.Definition.Contains), Is.True, output);
    }

    private string CopyOfLegacyApp(string name)
    {
        string dir = Directory.CreateDirectory(Path.Combine(_scratch, name)).FullName;
        foreach (var file in Directory.GetFiles(AppContext.BaseDirectory, "LegacyApp*")) File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
        return dir;
    }
}
