using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace SockShim.Tests.Interceptor;

/// <summary>
/// `sockshim run` (issue 20): where the launcher proves that `dotnet app.dll` will load the woven
/// System.Net.Sockets, the app starts from a copy of its runtimeconfig that turns startup hooks
/// off, the woven copy wires itself at the first socket, and the app starts as it would plainly;
/// the processes it starts keep the hook. Where it cannot prove it, the startup hook stays and
/// still refuses a bypass. The bypasses an attacker review found (a copy named in another case, a deps.json key
/// written with an escape, `..` after a link, a wrapper named dotnet, an apphost whose app is
/// another) each keep the hook. A framework-dependent apphost is proved the same way and starts
/// from its overlay (issue 20). SOCKSHIM_TRACE_STARTUP=1 makes the wiring say which way it ran;
/// the echo server in another process says where each socket came from.
/// </summary>
[NonParallelizable]
public class HooklessStartTests() : EchoServerFixture("127.107.0.0/24", "hookless")
{
    private string _scratch = "";
    private readonly List<string> _installs = [];

    [OneTimeSetUp]
    public void MakeScratch() => _scratch = Directory.CreateTempSubdirectory("sockshim-hookless-").FullName;

    [OneTimeTearDown]
    public void RemoveScratch()
    {
        Directory.Delete(_scratch, recursive: true);
        foreach (var install in _installs) Directory.Delete(install, recursive: true);
    }

    private (int Exit, string Out, string Err) Sockshim(IEnumerable<string> args, Dictionary<string, string>? extra = null)
    {
        var env = new Dictionary<string, string>(_pool.Environment) { ["SOCKSHIM_TRACE_STARTUP"] = "1" };
        foreach (var (k, v) in extra ?? []) env[k] = v;
        return Programs.Run("SockShim.Interceptor", args, env, TimeSpan.FromMinutes(3));
    }

    /// <summary>The variables `sockshim run --verbose` sets for a proved `dotnet app.dll` (mode
    /// all, on this fixture's pool), to start the app directly with them; and what it printed.</summary>
    private (Dictionary<string, string> Env, string Err) ProvedAppEnvironment()
    {
        var (exit, output, error) = Sockshim(["run", "--verbose", "--mode", "all", "--", "dotnet", Programs.PathOf("LegacyApp"), "--start"]);
        Assert.That(exit, Is.Zero, output + error);
        var env = new Dictionary<string, string>(_pool.Environment);
        foreach (Match m in Regex.Matches(error, @"^sockshim: ([A-Z_][A-Z0-9_]*)=(.*)$", RegexOptions.Multiline))
            if (m.Groups[1].Value != "SOCKSHIM_LOG") env[m.Groups[1].Value] = m.Groups[2].Value;
        return (env, error);
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
        Assert.That(error, Does.Contain(WiredAtFirstSocket).And.Not.Contain(WiredByHook), "the woven copy wired itself, the hook never ran in the app");
        // Started from a copy of its runtimeconfig with startup hooks off, private to this account.
        var copy = Regex.Match(error, @"^sockshim: command: \S*dotnet exec --runtimeconfig (\S+) ", RegexOptions.Multiline).Groups[1].Value;
        Assert.That(copy, Is.Not.Empty, error);
        Assert.That(JsonNode.Parse(File.ReadAllText(copy))!["runtimeOptions"]!["configProperties"]!["System.StartupHookProvider.IsSupported"]!.GetValue<bool>(), Is.False, copy);
        Assert.That(File.GetUnixFileMode(copy), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite), copy);
        var seen = Seen(output);
        Assert.That(seen, Has.Count.EqualTo(11), output);
        Assert.That(seen.All(_pool.Pool.Definition.Contains), Is.True, "every socket came from the pool: " + output);
        Assert.That(seen.Distinct().Count(), Is.EqualTo(seen.Count), "one address per socket");
        Assert.That(_pool.HeldSlots(), Is.Zero, "every address released when the app ended");
    }

    [Test]
    public void With_the_option_the_startup_hook_stays()
    {
        var (exit, output, error) = Sockshim(["run", "--verbose", "--startup-hook", "--mode", "all", "--", "dotnet", Programs.PathOf("LegacyApp"), _serverEndpoint]);
        Assert.That(exit, Is.Zero, output + error);
        Assert.That(error, Does.Contain("start: with the startup hook (asked for with --startup-hook").And.Contain(WiredByHook).And.Contain("DOTNET_STARTUP_HOOKS="));
        Assert.That(error, Does.Not.Contain("--runtimeconfig"), "started from its own runtimeconfig");
        Assert.That(Seen(output).All(_pool.Pool.Definition.Contains), Is.True, output);
    }

    /// <summary>The processes a proved app starts are not proved: they inherit the startup hook,
    /// which wires one that loads the woven copy and refuses one that does not.</summary>
    [Test]
    public void The_processes_a_proved_app_starts_keep_the_hook_which_serves_or_refuses_them()
    {
        string agent = Programs.PathOf("SockShim.TestAgent"), app = Programs.PathOf("LegacyApp");
        var (exit, output, error) = Sockshim(["run", "--verbose", "--mode", "all", "--", "dotnet", agent, "spawn", "dotnet", app, _serverEndpoint]);
        Assert.That(exit, Is.Zero, output + error);
        Assert.That(error, Does.Contain(NoHook), "the parent was proved");
        Assert.That(output, Does.Contain("child exit 0"), output + error);
        Assert.That(error, Does.Contain(WiredByHook), "the child was wired by the hook it inherited");
        var seen = Seen(output);
        Assert.That(seen, Has.Count.EqualTo(11), output);
        Assert.That(seen.All(_pool.Pool.Definition.Contains) && seen.Distinct().Count() == seen.Count, Is.True, output);

        // A child that bypasses the woven copy (the store's variables taken away): refused at its start.
        var (exit2, output2, error2) = Sockshim(["run", "--verbose", "--mode", "all", "--", "dotnet", agent, "spawn",
            "env", "-u", "DOTNET_SHARED_STORE", "-u", "DOTNET_ADDITIONAL_DEPS", "dotnet", app, _serverEndpoint]);
        Assert.That(exit2, Is.Zero, output2 + error2);
        Assert.That(error2, Does.Contain(NoHook), "the parent was proved");
        Assert.That(output2, Does.Contain("child exit 97"), output2 + error2);
        Assert.That(error2, Does.Contain("the woven System.Net.Sockets was not loaded"));
        Assert.That(Seen(output2), Is.Empty, "no socket of the child left unpatched");
    }

    /// <summary>A framework-dependent apphost proved like `dotnet app.dll` starts without the hook,
    /// from its overlay in the cache: copies of the apphost, its dll, its deps.json and its
    /// runtimeconfig with startup hooks off; links to the rest of its folder.</summary>
    [Test]
    public void An_apphost_starts_without_the_hook_from_its_overlay_and_every_api_still_gets_its_own_address()
    {
        string apphost = Path.ChangeExtension(Programs.PathOf("LegacyApp"), null);
        Assert.That(File.Exists(apphost), Is.True, "LegacyApp's apphost is built beside the tests");
        var (exit, output, error) = Sockshim(["run", "--verbose", "--mode", "all", "--", apphost, _serverEndpoint]);
        Assert.That(exit, Is.Zero, output + error);
        Assert.That(error, Does.Contain(NoHook), "the launcher proved the woven copy loads");
        Assert.That(error, Does.Contain(WiredAtFirstSocket).And.Not.Contain(WiredByHook), "the woven copy wired itself, the hook never ran in the app");
        string overlay = Regex.Match(error, @"^sockshim: apphost: started from its overlay (\S+) ", RegexOptions.Multiline).Groups[1].Value;
        Assert.That(overlay, Is.Not.Empty, error);
        Assert.That(error, Does.Contain($"sockshim: command: {Path.Combine(overlay, "LegacyApp")} {_serverEndpoint}"), "the overlay's apphost is what runs");
        Assert.That(new FileInfo(Path.Combine(overlay, "LegacyApp")).LinkTarget, Is.Null, "the apphost is a copy: the host finds the app beside its real path");
        Assert.That(File.ReadAllBytes(Path.Combine(overlay, "LegacyApp")), Is.EqualTo(File.ReadAllBytes(apphost)), "an exact copy");
        Assert.That(new FileInfo(Path.Combine(overlay, "LegacyApp.dll")).LinkTarget, Is.Null, "the app's dll is a copy");
        Assert.That(new FileInfo(Path.Combine(overlay, "LegacyApp.pdb")).LinkTarget, Is.EqualTo(Path.ChangeExtension(apphost, ".pdb")), "the rest of the folder is linked");
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(overlay, "LegacyApp.runtimeconfig.json")))!;
        Assert.That(config["runtimeOptions"]!["configProperties"]!["System.StartupHookProvider.IsSupported"]!.GetValue<bool>(), Is.False);
        Assert.That(File.ReadAllText(Path.Combine(overlay, "LegacyApp.deps.json")), Is.EqualTo(File.ReadAllText(apphost + ".deps.json")));
        var seen = Seen(output);
        Assert.That(seen, Has.Count.EqualTo(11), output);
        Assert.That(seen.All(_pool.Pool.Definition.Contains), Is.True, "every socket came from the pool: " + output);
        Assert.That(seen.Distinct().Count(), Is.EqualTo(seen.Count), "one address per socket");
        Assert.That(_pool.HeldSlots(), Is.Zero, "every address released when the app ended");

        // The same app again: the overlay is found, not made.
        var (exit2, output2, error2) = Sockshim(["run", "--verbose", "--mode", "all", "--", apphost, "--start"]);
        Assert.That(exit2, Is.Zero, output2 + error2);
        Assert.That(error2, Does.Contain($"started from its overlay {overlay} ").And.Not.Contain("sockshim: overlay:"), error2);

        // Named by a non-cryptographic hash of its key, an overlay is taken only when the key it
        // records is this one: one recording another key (a name collision) is made again.
        string keyFile = Path.Combine(overlay, ".sockshim-key");
        string key = File.ReadAllText(keyFile);
        File.WriteAllText(keyFile, key.Replace("LegacyApp.pdb", "Other.pdb"));
        var (exit3, output3, error3) = Sockshim(["run", "--verbose", "--mode", "all", "--", apphost, "--start"]);
        Assert.That(exit3, Is.Zero, output3 + error3);
        Assert.That(error3, Does.Contain($"sockshim: overlay: {overlay}"), "made again: " + error3);
        Assert.That(File.ReadAllText(keyFile), Is.EqualTo(key));
    }

    /// <summary>An apphost runs the app path written inside it: one renamed after the build
    /// (here a copy named Other, which still runs LegacyApp.dll) is not proved, so the hook stays.</summary>
    [Test]
    public void A_renamed_apphost_keeps_the_hook()
    {
        string app = CopyOfLegacyApp("renamed");
        File.Move(Path.Combine(app, "LegacyApp"), Path.Combine(app, "Other"));
        ServedByTheHook([Path.Combine(app, "Other")], "does not start Other.dll (its own name's dll)");
    }

    /// <summary>An apphost built with search options of its own (AppHostDotNetSearch: here the
    /// location byte set to the global installation only, as the SDK writes it) ignores
    /// DOTNET_ROOT: not read, not proved, so the hook stays.</summary>
    [Test]
    public void An_apphost_with_its_own_search_options_keeps_the_hook()
    {
        string app = CopyOfLegacyApp("search");
        string apphost = Path.Combine(app, "LegacyApp");
        byte[] image = File.ReadAllBytes(apphost);
        int at = image.AsSpan().IndexOf("19ff3e9c3602ae8e841925bb461a0adb064a1f1903667a5e0d87e8f608f425ac"u8);
        Assert.That(at, Is.GreaterThan(2), "the .NET 9 search options field");
        Assert.That(image[at - 2], Is.Zero, "built with the default search");
        image[at - 2] = 8; // the global location only
        File.WriteAllBytes(apphost, image);
        ServedByTheHook([apphost], "was built with its own .NET search options");
    }

    /// <summary>An apphost's app-local System.Net.Sockets (a copy of the framework's, unwoven, in
    /// its folder): not proved; the hook stays and refuses the bypass.</summary>
    [Test]
    public void An_apphost_with_an_app_local_system_net_sockets_keeps_the_hook_which_refuses()
    {
        string app = CopyOfLegacyApp("apphost-local");
        File.Delete(Path.Combine(app, "LegacyApp.deps.json"));
        File.Copy(FrameworkSockets, Path.Combine(app, "System.Net.Sockets.dll"));
        RefusedByTheHook([Path.Combine(app, "LegacyApp")], "has a System.Net.Sockets of its own (System.Net.Sockets.dll)");
    }

    /// <summary>DOTNET_ROOT_X64, which the apphost prefers to DOTNET_ROOT and the store does not
    /// read, leads it to another installation, one with a runtime the store has not woven: not
    /// proved; the hook stays and refuses to run on it.</summary>
    [Test]
    public void An_apphost_whose_dotnet_root_has_a_runtime_the_store_has_not_woven_keeps_the_hook_which_refuses()
    {
        var (install, added) = InstallationWithAnUnwovenRuntime();
        var (exit, output, error) = Sockshim(["run", "--verbose", "--mode", "all", "--", Path.ChangeExtension(Programs.PathOf("LegacyApp"), null), _serverEndpoint],
            new() { ["DOTNET_ROOT_X64"] = install });
        Assert.That(error, Does.Contain($"start: with the startup hook (runtime {Path.GetFileName(added)} in {install} has no woven copy checked for this launch"), error);
        Assert.That(exit, Is.EqualTo(97), output + error);
        Assert.That(error, Does.Contain("has changed since").And.Contain("Run `sockshim prepare` to weave this runtime"));
        Assert.That(Seen(output), Is.Empty, "no socket left unpatched");
    }

    /// <summary>The seventh review: an apphost whose real app path field names another folder's
    /// app (x/LegacyApp.dll, beside its own unwoven System.Net.Sockets), with a decoy field naming
    /// its own dll appended to the file, passed a proof that looked for the field by content. It
    /// is no longer byte for byte the installation's apphost: not proved, the hook stays and
    /// refuses. And when that other app's runtimeconfig switches startup hooks off, the app is
    /// refused before it starts (its renamed apphost's own runtimeconfig was all that was read).</summary>
    [TestCase(false)]
    [TestCase(true)]
    public void An_apphost_whose_field_names_another_folders_app_behind_a_decoy_is_refused(bool hooksOff)
    {
        string app = CopyOfLegacyApp("decoy-field-" + hooksOff);
        string x = Directory.CreateDirectory(Path.Combine(app, "x")).FullName;
        foreach (var file in (string[])["LegacyApp.dll", "LegacyApp.runtimeconfig.json"]) File.Copy(Path.Combine(app, file), Path.Combine(x, file));
        File.Copy(FrameworkSockets, Path.Combine(x, "System.Net.Sockets.dll"));
        if (hooksOff)
        {
            var config = JsonNode.Parse(File.ReadAllText(Path.Combine(x, "LegacyApp.runtimeconfig.json")))!;
            var options = config["runtimeOptions"]!.AsObject();
            if (options["configProperties"] is not JsonObject properties) options["configProperties"] = properties = new JsonObject();
            properties["System.StartupHookProvider.IsSupported"] = false;
            File.WriteAllText(Path.Combine(x, "LegacyApp.runtimeconfig.json"), config.ToJsonString());
        }
        string apphost = Path.Combine(app, "LegacyApp");
        byte[] image = File.ReadAllBytes(apphost);
        int field = image.AsSpan().IndexOf("\0LegacyApp.dll\0"u8) + 1;
        Assert.That(field, Is.GreaterThan(0), "the app path field as the build wrote it");
        "x/LegacyApp.dll"u8.CopyTo(image.AsSpan(field));
        File.WriteAllBytes(apphost, [.. image, 0, .. "LegacyApp.dll"u8, .. new byte[1025]]);
        if (!hooksOff)
        {
            RefusedByTheHook([apphost], "is not byte for byte an apphost of");
            return;
        }
        var (exit, output, error) = Sockshim(["run", "--verbose", "--mode", "all", "--", apphost, _serverEndpoint]);
        Assert.That(exit, Is.EqualTo(97), output + error);
        Assert.That(error, Does.Contain(Path.Combine(x, "LegacyApp.runtimeconfig.json") + " sets System.StartupHookProvider.IsSupported=false"), error);
        Assert.That(Seen(output), Is.Empty, "not started");
    }

    /// <summary>The seventh review: a runtime folder of links to the real runtime whose own
    /// Microsoft.NETCore.App.deps.json lists System.Net.Sockets at a file version above the woven
    /// copy's entry: its System.Net.Sockets.dll is the file the store wove, but the host takes
    /// the framework's unwoven copy. Not proved; the hook stays and refuses.</summary>
    [Test]
    public void A_runtime_whose_deps_file_outranks_the_woven_copy_keeps_the_hook_which_refuses()
    {
        string muxer = new FileInfo(Environment.ProcessPath!).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? Environment.ProcessPath!;
        string install = Directory.CreateTempSubdirectory("outranking-").FullName;
        _installs.Add(install);
        File.Copy(muxer, Path.Combine(install, "dotnet"));
        File.SetUnixFileMode(Path.Combine(install, "dotnet"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Directory.CreateSymbolicLink(Path.Combine(install, "host"), Path.Combine(Path.GetDirectoryName(muxer)!, "host"));
        string running = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        string runtime = Directory.CreateDirectory(Path.Combine(install, "shared", "Microsoft.NETCore.App", Path.GetFileName(running))).FullName;
        foreach (var file in Directory.GetFiles(running))
            if (Path.GetFileName(file) != "Microsoft.NETCore.App.deps.json") File.CreateSymbolicLink(Path.Combine(runtime, Path.GetFileName(file)), file);
        var deps = JsonNode.Parse(File.ReadAllText(Path.Combine(running, "Microsoft.NETCore.App.deps.json")))!;
        var entry = deps["targets"]!.AsObject().Select(t => t.Value!.AsObject()).SelectMany(t => t.Select(l => l.Value!["runtime"]?.AsObject()))
            .OfType<JsonObject>().Select(r => r["System.Net.Sockets.dll"]).OfType<JsonObject>().Single();
        entry["fileVersion"] = "10.0.65535.99";
        File.WriteAllText(Path.Combine(runtime, "Microsoft.NETCore.App.deps.json"), deps.ToJsonString());

        var (exit, output, error) = Sockshim(["run", "--verbose", "--mode", "all", "--", Path.Combine(install, "dotnet"), Programs.PathOf("LegacyApp"), _serverEndpoint],
            new() { ["DOTNET_ROOT"] = install });
        Assert.That(error, Does.Contain("start: with the startup hook (").And.Contain("does not outrank"), error);
        Assert.That(exit, Is.EqualTo(97), output + error);
        Assert.That(error, Does.Contain("the woven System.Net.Sockets was not loaded"), error);
        Assert.That(Seen(output), Is.Empty, "no socket left unpatched");
    }

    /// <summary>The seventh review: a deps.json and a System.Net.Sockets.dll planted in the app's
    /// folder after the proof judged it (an app without a deps.json) were linked into the
    /// overlay, which listed the folder again. The overlay links the names the proof listed and
    /// no other. (Planted here between the two calls the launcher makes.)</summary>
    [Test]
    public void An_apphost_overlay_links_only_the_names_the_proof_judged()
    {
        string app = CopyOfLegacyApp("planted");
        File.Delete(Path.Combine(app, "LegacyApp.deps.json"));
        var store = new SockShim.Interceptor.Store.WovenStore(SockShim.Interceptor.Store.WovenStore.DefaultRoot, SockShim.Interceptor.Weaving.StoreWeaver.Weave);
        store.PrepareAll();
        Assert.That(SockShim.Interceptor.Launch.HooklessProof.WhyNot([Path.Combine(app, "LegacyApp")], store, out var proof), Is.Null);
        File.Copy(FrameworkSockets, Path.Combine(app, "System.Net.Sockets.dll"));
        File.Copy(Path.ChangeExtension(Programs.PathOf("LegacyApp"), ".deps.json"), Path.Combine(app, "LegacyApp.deps.json"));
        string overlay = Path.GetDirectoryName(SockShim.Interceptor.Store.AppOverlay.ForApphost(store, proof!))!;
        var entries = Directory.EnumerateFileSystemEntries(overlay).Select(Path.GetFileName).ToList();
        Assert.That(entries, Does.Contain("LegacyApp").And.Contain("LegacyApp.dll").And.Contain("LegacyApp.runtimeconfig.json"));
        Assert.That(entries, Does.Not.Contain("System.Net.Sockets.dll").And.Not.Contain("LegacyApp.deps.json"), "planted after the proof: neither judged nor linked");
    }

    /// <summary>The eighth review: an app that brings its own SockShim.StartupHook.dll (any file of
    /// its folder without a deps.json, or an asset its deps.json lists) has it loaded in place of
    /// SockShim's hook by both starts (the runtime loads both by path into the default context,
    /// which takes the app's), and ran unpatched without a word. Refused before it starts, by
    /// `dotnet app.dll` and by its apphost alike.</summary>
    [TestCase("folder", "dotnet", "")]
    [TestCase("folder", "apphost", "")]
    [TestCase("deps", "dotnet", "")]
    [TestCase("deps", "apphost", "")]
    [TestCase("folder", "dotnet", "--startup-hook")]
    [TestCase("deps", "apphost", "--startup-hook")]
    public void An_app_that_brings_its_own_sockshim_hook_assembly_is_refused(string how, string start, string option)
    {
        string app = CopyOfLegacyApp($"own-hook-{how}-{start}{option}");
        string deps = Path.Combine(app, "LegacyApp.deps.json");
        if (how == "folder")
        {
            File.Delete(deps);
            File.Copy(Programs.PathOf("SockShim.StartupHook"), Path.Combine(app, "SockShim.StartupHook.dll"));
        }
        else
        {
            var json = JsonNode.Parse(File.ReadAllText(deps))!;
            var self = json["targets"]!.AsObject().First().Value!.AsObject().First(p => p.Key.StartsWith("LegacyApp/")).Value!.AsObject();
            self["runtime"] = new JsonObject { ["LegacyApp.dll"] = new JsonObject(), ["lib/SockShim.StartupHook.dll"] = new JsonObject() };
            File.WriteAllText(deps, json.ToJsonString());
        }
        string[] command = start == "dotnet" ? ["dotnet", Path.Combine(app, "LegacyApp.dll")] : [Path.Combine(app, "LegacyApp")];
        var (exit, output, error) = Sockshim(["run", "--verbose", "--mode", "all", .. option.Length > 0 ? [option] : Array.Empty<string>(), "--", .. command, _serverEndpoint]);
        Assert.That(exit, Is.EqualTo(97), output + error);
        Assert.That(error, Does.Contain("brings an assembly named SockShim.StartupHook of its own").Or.Contain("lists an assembly named SockShim.StartupHook"), error);
        Assert.That(Seen(output), Is.Empty, "not started");
    }

    /// <summary>The ninth review: files the host reads for the app that the deployment check did
    /// not look at, each of which let an app run unpatched with no refusal: a
    /// runtimeconfig.dev.json switching startup hooks off (merged by the host), a managed app
    /// named .exe (`dotnet App.exe`), an app reached through a link (its real folder carries
    /// SockShim's hook assembly), and a deps file given with `dotnet exec --depsfile`. Each is
    /// refused before it starts; so is a deps file SockShim cannot read (a FIFO here).</summary>
    [TestCase("dev-json", "LegacyApp.runtimeconfig.dev.json sets System.StartupHookProvider.IsSupported=false")]
    [TestCase("exe", "LegacyApp.runtimeconfig.json sets System.StartupHookProvider.IsSupported=false")]
    [TestCase("link", "brings an assembly named SockShim.StartupHook of its own")]
    [TestCase("depsfile", "brings an assembly named SockShim.StartupHook of its own")]
    [TestCase("unreadable", "deps files cannot be read")]
    public void Files_the_host_reads_for_the_app_are_judged_too(string how, string reason)
    {
        string app = CopyOfLegacyApp("judged-" + how);
        const string hooksOff = """{"runtimeOptions":{"configProperties":{"System.StartupHookProvider.IsSupported":false}}}""";
        string[] command;
        switch (how)
        {
            case "dev-json":
                File.WriteAllText(Path.Combine(app, "LegacyApp.runtimeconfig.dev.json"), hooksOff);
                command = ["dotnet", Path.Combine(app, "LegacyApp.dll")];
                break;
            case "exe":
                File.Move(Path.Combine(app, "LegacyApp.dll"), Path.Combine(app, "LegacyApp.exe"));
                var config = JsonNode.Parse(File.ReadAllText(Path.Combine(app, "LegacyApp.runtimeconfig.json")))!;
                var options = config["runtimeOptions"]!.AsObject();
                if (options["configProperties"] is not JsonObject properties) options["configProperties"] = properties = new JsonObject();
                properties["System.StartupHookProvider.IsSupported"] = false;
                File.WriteAllText(Path.Combine(app, "LegacyApp.runtimeconfig.json"), config.ToJsonString());
                command = ["dotnet", Path.Combine(app, "LegacyApp.exe")];
                break;
            case "link":
                File.Delete(Path.Combine(app, "LegacyApp.deps.json"));
                File.Copy(Programs.PathOf("SockShim.StartupHook"), Path.Combine(app, "SockShim.StartupHook.dll"));
                string linked = Directory.CreateDirectory(Path.Combine(_scratch, "judged-link-front")).FullName;
                foreach (var file in (string[])["LegacyApp.runtimeconfig.json"]) File.Copy(Path.Combine(app, file), Path.Combine(linked, file));
                File.Copy(Path.ChangeExtension(Programs.PathOf("LegacyApp"), ".deps.json"), Path.Combine(linked, "LegacyApp.deps.json"));
                File.CreateSymbolicLink(Path.Combine(linked, "LegacyApp.dll"), Path.Combine(app, "LegacyApp.dll"));
                command = ["dotnet", Path.Combine(linked, "LegacyApp.dll")];
                break;
            case "unreadable":
                // A FIFO: SockShim never waits on one, so it cannot tell what it lists (unreadable is not "none").
                File.Delete(Path.Combine(app, "LegacyApp.deps.json"));
                Assert.That(Programs.RunFile("mkfifo", [Path.Combine(app, "LegacyApp.deps.json")], TimeSpan.FromSeconds(10)).Exit, Is.Zero);
                command = ["dotnet", Path.Combine(app, "LegacyApp.dll")];
                break;
            default:
                var deps = JsonNode.Parse(File.ReadAllText(Path.Combine(app, "LegacyApp.deps.json")))!;
                var self = deps["targets"]!.AsObject().First().Value!.AsObject().First(p => p.Key.StartsWith("LegacyApp/")).Value!.AsObject();
                self["runtime"] = new JsonObject { ["LegacyApp.dll"] = new JsonObject(), ["SockShim.StartupHook.dll"] = new JsonObject() };
                File.WriteAllText(Path.Combine(app, "other.deps.json"), deps.ToJsonString());
                command = ["dotnet", "exec", "--depsfile", Path.Combine(app, "other.deps.json"), Path.Combine(app, "LegacyApp.dll")];
                break;
        }
        // The link with the startup hook: without it the proof, which judges the real folder, refuses too.
        string[] start = how == "link" ? ["--startup-hook"] : [];
        var (exit, output, error) = Sockshim(["run", "--verbose", "--mode", "all", .. start, "--", .. command, _serverEndpoint]);
        Assert.That(exit, Is.EqualTo(97), output + error);
        Assert.That(error, Does.Contain(reason), error);
        Assert.That(Seen(output), Is.Empty, "not started");
    }

    /// <summary>The eighth review: the host lists System.Net.Sockets.ni.dll as System.Net.Sockets
    /// too (and then stopped, exit 140): not the woven copy proved to load.</summary>
    [Test]
    public void A_native_image_named_system_net_sockets_is_not_proved()
    {
        string app = CopyOfLegacyApp("ni");
        File.Delete(Path.Combine(app, "LegacyApp.deps.json"));
        File.Copy(FrameworkSockets, Path.Combine(app, "System.Net.Sockets.ni.dll"));
        var (exit, output, error) = Sockshim(["run", "--verbose", "--mode", "all", "--", "dotnet", Path.Combine(app, "LegacyApp.dll"), _serverEndpoint]);
        Assert.That(error, Does.Contain("start: with the startup hook (").And.Contain("has a System.Net.Sockets of its own (System.Net.Sockets.ni.dll)"), error);
        Assert.That(exit, Is.Not.Zero, output + error);
        Assert.That(Seen(output), Is.Empty, "no socket left unpatched");
    }

    /// <summary>The eighth review: the proof resolved `dotnet` by its real path but the exec looked
    /// the name up again, so a link re-pointed in between started another installation. The
    /// muxer proved is what is exec'd.</summary>
    [Test]
    public void The_muxer_proved_is_the_one_execd_by_its_real_path()
    {
        string muxer = new FileInfo(Environment.ProcessPath!).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? Environment.ProcessPath!;
        string links = Directory.CreateDirectory(Path.Combine(_scratch, "links")).FullName;
        File.CreateSymbolicLink(Path.Combine(links, "dotnet"), muxer);
        var (exit, output, error) = Sockshim(["run", "--verbose", "--mode", "all", "--", Path.Combine(links, "dotnet"), Programs.PathOf("LegacyApp"), _serverEndpoint]);
        Assert.That(exit, Is.Zero, output + error);
        Assert.That(error, Does.Contain(NoHook).And.Contain($"sockshim: exec: {muxer} "), error);
        Assert.That(Seen(output), Has.Count.EqualTo(11), output);
    }

    /// <summary>SOCKSHIM_WIRE naming an assembly without the wiring type (SockShim's own hooks
    /// assembly here): the woven copy, which finds the type by name among the exported ones,
    /// cannot fill its slots, and the app stops at the first use of a socket that needs SockShim
    /// (here every API's connect) instead of running unpatched.</summary>
    [Test]
    public void A_wire_assembly_without_the_wiring_type_stops_the_app_at_its_first_connect()
    {
        var (env, err0) = ProvedAppEnvironment();
        Assert.That(env, Does.ContainKey("SOCKSHIM_WIRE"), err0);
        // Under the launcher the app's runtimeconfig copy turns the hook off; started directly
        // here, the hook's variable (set for the app's children) is left out to the same effect.
        Assert.That(env.Remove("DOTNET_STARTUP_HOOKS"), Is.True, err0);
        // The launcher's variables as they are, the app started directly: wired, every socket from the pool.
        var (exit1, out1, err1) = Programs.Run("LegacyApp", [_serverEndpoint], env, TimeSpan.FromMinutes(2));
        Assert.That(exit1, Is.Zero, out1 + err1);
        Assert.That(Seen(out1), Has.Count.EqualTo(11), out1);
        Assert.That(Seen(out1).All(_pool.Pool.Definition.Contains), Is.True, out1);

        env["SOCKSHIM_WIRE"] = Path.Combine(Path.GetDirectoryName(env["SOCKSHIM_WIRE"])!, "SockShim.Hooks.dll");
        var (exit, output, error) = Programs.Run("LegacyApp", [_serverEndpoint], env, TimeSpan.FromMinutes(2));
        Assert.That(exit, Is.Not.Zero, "the app reported success: " + output + error);
        Assert.That(Seen(output), Is.Empty, "no socket reached the server: " + output);
        Assert.That(Regex.Matches(output, @"^api=\S+ error=TypeInitializationException: The type initializer for 'System.Net.Sockets.SockShimWiring'", RegexOptions.Multiline),
            Has.Count.EqualTo(10), "every socket API failed where the woven copy wires itself (HttpClient wraps the same): " + output);
    }

    /// <summary>A refusal inside the woven copy's wiring (its static constructor, here at a bind)
    /// ends the process at once with 97: none of the app's ProcessExit handlers runs, since one
    /// that used a socket would wait for that constructor forever (found by review: the app hung).</summary>
    [Test, CancelAfter(180_000)]
    public void A_refusal_at_the_wiring_runs_none_of_the_apps_exit_handlers()
    {
        var (env, err0) = ProvedAppEnvironment();
        Assert.That(env.Remove("DOTNET_STARTUP_HOOKS"), Is.True, "started as a proved app: wired by the woven copy");
        string record = SockShim.Interceptor.Contract.HookContract.WovenRecordVariable(Environment.Version.ToString());
        var parts = env[record].Split(':', 2);
        env[record] = $"{ulong.Parse(parts[0]) + 1}:{parts[1]}";

        var (exit, output, error) = Programs.Run("LegacyApp", ["--bind-with-exit-handler"], env, TimeSpan.FromSeconds(60));
        Assert.That(exit, Is.EqualTo(97), output + error);
        Assert.That(error, Does.Contain("has changed since the launcher checked it"));
        Assert.That(error, Does.Not.Contain("exit handler: running"), "no app code after a refusal");
    }

    /// <summary>Creating and closing an ordinary socket needs nothing of SockShim, even in mode
    /// all: the woven copy does not wire it, so an app that never binds, connects or sends costs
    /// what the woven copy alone costs. A tuple socket wires it at its creation, before the OS
    /// socket is made (its family has to be mapped).</summary>
    [Test]
    public void An_ordinary_socket_created_and_closed_wires_nothing_and_a_tuple_socket_wires_at_creation()
    {
        var (exit, output, error) = Sockshim(["run", "--verbose", "--mode", "all", "--", "dotnet", Programs.PathOf("LegacyApp"), "--start"]);
        Assert.That(exit, Is.Zero, output + error);
        Assert.That(error, Does.Contain(NoHook));
        Assert.That(error, Does.Not.Contain(WiredAtFirstSocket).And.Not.Contain(WiredByHook), "nothing of SockShim ran in the app");

        var (tupleExit, tupleOut, tupleErr) = Sockshim(["run", "--verbose", "--mode", "all", "--", "dotnet", Programs.PathOf("LegacyApp"), "--start", "--tuple"]);
        Assert.That(tupleExit, Is.Zero, tupleOut + tupleErr);
        Assert.That(tupleErr, Does.Contain(WiredAtFirstSocket), "the tuple socket wired SockShim");
        Assert.That(_pool.HeldSlots(), Is.Zero, "its address, if it took one, went back at its close");
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

        RefusedByTheHook(Path.Combine(app, "LegacyApp.dll"), "has a System.Net.Sockets of its own (System.Net.Sockets.dll)");
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
        ServedByTheHook([script], $"{script} is not an apphost");
    }

    /// <summary>Without a deps.json the host lists every .dll of the folder in its own spelling, and
    /// the runtime matches names in any case: a copy named SYSTEM.NET.SOCKETS.dll was loaded.</summary>
    [Test]
    public void A_copy_named_in_another_case_keeps_the_hook_which_refuses()
    {
        string app = CopyOfLegacyApp("case");
        File.Delete(Path.Combine(app, "LegacyApp.deps.json"));
        File.Copy(FrameworkSockets, Path.Combine(app, "SYSTEM.NET.SOCKETS.dll"));
        RefusedByTheHook(Path.Combine(app, "LegacyApp.dll"), "has a System.Net.Sockets of its own (SYSTEM.NET.SOCKETS.dll)");
    }

    /// <summary>The host decodes deps.json: a key written with an escape (System.Net.Sock\u0065ts.dll)
    /// in a subfolder is still the app's own System.Net.Sockets.</summary>
    [Test]
    public void A_deps_json_that_names_it_with_an_escape_keeps_the_hook_which_refuses()
    {
        string app = CopyOfLegacyApp("escape");
        string asset = "runtimes/linux-x64/lib/net10.0/System.Net.Sockets.dll";
        Directory.CreateDirectory(Path.Combine(app, Path.GetDirectoryName(asset)!));
        File.Copy(FrameworkSockets, Path.Combine(app, asset));
        string deps = Path.Combine(app, "LegacyApp.deps.json");
        var json = JsonNode.Parse(File.ReadAllText(deps))!;
        var self = json["targets"]!.AsObject().First().Value!.AsObject().First(p => p.Key.StartsWith("LegacyApp/")).Value!.AsObject();
        self["runtimeTargets"] = new JsonObject
        {
            ["PLACEHOLDER"] = new JsonObject { ["rid"] = "linux-x64", ["assetType"] = "runtime", ["assemblyVersion"] = "99.0.0.0", ["fileVersion"] = "99.0.0.0" },
        };
        File.WriteAllText(deps, json.ToJsonString().Replace("PLACEHOLDER", asset.Replace("Sockets", "Sock\\u0065ts")));
        Assert.That(File.ReadAllText(deps), Does.Contain("Sock\\u0065ts.dll").And.Not.Contain("System.Net.Sockets.dll"), "the file names it only through the escape");
        RefusedByTheHook(Path.Combine(app, "LegacyApp.dll"), "lists a System.Net.Sockets of the app's own");
    }

    /// <summary>`..` after a link leads where the link points, not back: L/../decoy is deep/decoy
    /// when L links to deep/x. The proof reads the folder the host will run from.</summary>
    [Test]
    public void A_path_with_dot_dot_after_a_link_is_judged_where_it_leads()
    {
        string clean = CopyOfLegacyApp("decoy");
        string deep = Directory.CreateDirectory(Path.Combine(_scratch, "deep")).FullName;
        Directory.CreateDirectory(Path.Combine(deep, "x"));
        string armed = Directory.CreateDirectory(Path.Combine(deep, "decoy")).FullName;
        foreach (var file in Directory.GetFiles(clean)) File.Copy(file, Path.Combine(armed, Path.GetFileName(file)));
        File.Copy(FrameworkSockets, Path.Combine(armed, "System.Net.Sockets.dll"));
        File.CreateSymbolicLink(Path.Combine(_scratch, "L"), Path.Combine(deep, "x"));
        RefusedByTheHook(Path.Combine(_scratch, "L", "..", "decoy", "LegacyApp.dll"), "has a System.Net.Sockets of its own");
    }

    /// <summary>A script named dotnet decides itself which installation runs: not the muxer, so
    /// not proved (its installation could have runtimes the store never wove).</summary>
    [Test]
    public void A_wrapper_named_dotnet_keeps_the_hook()
    {
        string muxer = new FileInfo(Environment.ProcessPath!).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? Environment.ProcessPath!;
        string wrapper = Path.Combine(Directory.CreateDirectory(Path.Combine(_scratch, "wrap")).FullName, "dotnet");
        File.WriteAllText(wrapper, $"#!/bin/sh\nexec '{muxer}' \"$@\"\n");
        File.SetUnixFileMode(wrapper, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var (exit, output, error) = Sockshim(["run", "--verbose", "--mode", "all", "--", wrapper, Programs.PathOf("LegacyApp"), _serverEndpoint]);
        Assert.That(exit, Is.Zero, output + error);
        Assert.That(error, Does.Contain("is not the .NET muxer itself").And.Contain(WiredByHook));
        Assert.That(Seen(output).All(_pool.Pool.Definition.Contains), Is.True, output);
    }

    /// <summary>The host joins a framework's name to its shared folder: a name with `../` climbs
    /// to a folder of the app owner's, whose System.Net.Sockets (a higher file version in its deps
    /// file) outranks the store's. Not a plain name, so not proved: the hook stays and refuses.</summary>
    [Test]
    public void A_framework_name_that_climbs_out_of_the_installation_keeps_the_hook_which_refuses()
    {
        string app = CopyOfLegacyApp("climb");
        string fx = Directory.CreateDirectory(Path.Combine(_scratch, "fx", "1.0.0")).FullName;
        File.Copy(FrameworkSockets, Path.Combine(fx, "System.Net.Sockets.dll"));
        string muxer = new FileInfo(Environment.ProcessPath!).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? Environment.ProcessPath!;
        string name = Path.GetRelativePath(Path.Combine(Path.GetDirectoryName(muxer)!, "shared"), Path.Combine(_scratch, "fx"));
        Assert.That(name, Does.StartWith(".."), "the name climbs out of the shared folder");
        // The host reads the framework's deps file at <shared>/<name>/<version>/<name>.deps.json.
        string depsFile = Path.GetFullPath(Path.Combine(fx, name + ".deps.json"));
        File.WriteAllText(depsFile, """{"runtimeTarget":{"name":".NETCoreApp,Version=v10.0/linux-x64","signature":""},"targets":{".NETCoreApp,Version=v10.0/linux-x64":{"fx/1.0.0":{"runtime":{"System.Net.Sockets.dll":{"assemblyVersion":"10.0.0.0","fileVersion":"10.0.65535.65535"}}}}},"libraries":{"fx/1.0.0":{"type":"project","serviceable":false,"sha512":""}}}""");
        string config = Path.Combine(app, "LegacyApp.runtimeconfig.json");
        var json = JsonNode.Parse(File.ReadAllText(config))!;
        var options = json["runtimeOptions"]!.AsObject();
        var netcore = options["framework"]!.DeepClone();
        options.Remove("framework");
        options["frameworks"] = new JsonArray(new JsonObject { ["name"] = name, ["version"] = "1.0.0" }, netcore);
        File.WriteAllText(config, json.ToJsonString());
        RefusedByTheHook(Path.Combine(app, "LegacyApp.dll"), "which is not a plain name");
    }

    /// <summary>A runtime folder the store has not woven (one added after `prepare`: here a copy of
    /// the running runtime under a higher patch number, in an installation of its own whose muxer
    /// is a copy of the real one): the app would roll forward to it, so not proved; the hook stays,
    /// and refuses to run on a runtime whose System.Net.Sockets is not the one the copy was woven from.</summary>
    [Test]
    public void A_runtime_the_store_has_not_woven_keeps_the_hook_which_refuses()
    {
        var (install, added) = InstallationWithAnUnwovenRuntime();
        var (exit, output, error) = Sockshim(["run", "--verbose", "--mode", "all", "--", Path.Combine(install, "dotnet"), Programs.PathOf("LegacyApp"), _serverEndpoint]);
        Assert.That(error, Does.Contain($"start: with the startup hook (runtime {Path.GetFileName(added)} in {install} has no woven copy checked for this launch"), error);
        Assert.That(exit, Is.EqualTo(97), output + error);
        Assert.That(error, Does.Contain("has changed since").And.Contain("Run `sockshim prepare` to weave this runtime"));
        Assert.That(Seen(output), Is.Empty, "no socket left unpatched");
    }

    /// <summary>A start without hooks would silently drop the user's own startup hooks (an APM
    /// agent's): the user's DOTNET_STARTUP_HOOKS keeps the start with hooks.</summary>
    [Test]
    public void The_users_own_startup_hooks_keep_the_start_with_hooks()
    {
        // The user's hook: a StartupHook class whose Initialize writes a line (made here, saved to disk).
        string hook = Path.Combine(_scratch, "UsersHook.dll");
        var assembly = new System.Reflection.Emit.PersistedAssemblyBuilder(new System.Reflection.AssemblyName("UsersHook"), typeof(object).Assembly);
        var type = assembly.DefineDynamicModule("UsersHook").DefineType("StartupHook", System.Reflection.TypeAttributes.Public | System.Reflection.TypeAttributes.Abstract | System.Reflection.TypeAttributes.Sealed);
        var il = type.DefineMethod("Initialize", System.Reflection.MethodAttributes.Public | System.Reflection.MethodAttributes.Static, typeof(void), Type.EmptyTypes).GetILGenerator();
        il.Emit(System.Reflection.Emit.OpCodes.Ldstr, "the user's startup hook ran in ");
        il.Emit(System.Reflection.Emit.OpCodes.Call, typeof(AppDomain).GetProperty(nameof(AppDomain.CurrentDomain))!.GetMethod!);
        il.Emit(System.Reflection.Emit.OpCodes.Callvirt, typeof(AppDomain).GetProperty(nameof(AppDomain.FriendlyName))!.GetMethod!);
        il.Emit(System.Reflection.Emit.OpCodes.Call, typeof(string).GetMethod(nameof(string.Concat), [typeof(string), typeof(string)])!);
        il.Emit(System.Reflection.Emit.OpCodes.Call, typeof(Console).GetMethod(nameof(Console.WriteLine), [typeof(string)])!);
        il.Emit(System.Reflection.Emit.OpCodes.Ret);
        type.CreateType();
        assembly.Save(hook);

        var (exit, output, error) = Sockshim(["run", "--verbose", "--mode", "all", "--", "dotnet", Programs.PathOf("LegacyApp"), _serverEndpoint],
            new() { ["DOTNET_STARTUP_HOOKS"] = hook });
        Assert.That(exit, Is.Zero, output + error);
        Assert.That(error, Does.Contain("start: with the startup hook (the environment already sets DOTNET_STARTUP_HOOKS"), error);
        Assert.That(output, Does.Contain("the user's startup hook ran in LegacyApp"), "the user's hook ran in the app");
        Assert.That(error, Does.Contain(WiredByHook));
        Assert.That(Seen(output), Has.Count.EqualTo(11), output);
        Assert.That(Seen(output).All(_pool.Pool.Definition.Contains), Is.True, output);
    }

    /// <summary>An installation of its own (a copy of the real muxer, the real host/fxr linked)
    /// holding the running runtime (linked) and a copy of it under a higher patch number, added
    /// as after `prepare`.</summary>
    private (string Install, string Added) InstallationWithAnUnwovenRuntime()
    {
        string muxer = new FileInfo(Environment.ProcessPath!).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? Environment.ProcessPath!;
        string install = Directory.CreateTempSubdirectory("install-").FullName; // one each: two tests make one
        _installs.Add(install);
        File.Copy(muxer, Path.Combine(install, "dotnet"));
        File.SetUnixFileMode(Path.Combine(install, "dotnet"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Directory.CreateSymbolicLink(Path.Combine(install, "host"), Path.Combine(Path.GetDirectoryName(muxer)!, "host"));
        // The SDK's packs too: an apphost is proved against the templates of the installation it runs on.
        Directory.CreateSymbolicLink(Path.Combine(install, "packs"), Path.Combine(Path.GetDirectoryName(muxer)!, "packs"));
        string frameworks = Directory.CreateDirectory(Path.Combine(install, "shared", "Microsoft.NETCore.App")).FullName;
        string running = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        Directory.CreateSymbolicLink(Path.Combine(frameworks, Path.GetFileName(running)), running);
        var version = Version.Parse(Path.GetFileName(running));
        string added = Directory.CreateDirectory(Path.Combine(frameworks, $"{version.Major}.{version.Minor}.{version.Build + 80}")).FullName;
        foreach (var file in Directory.GetFiles(running)) File.Copy(file, Path.Combine(added, Path.GetFileName(file)));
        // Not the file the store wove (as a runtime installed after `prepare` would not be): the
        // same bits would rightly be served, the woven copy being made from them.
        File.SetLastWriteTimeUtc(Path.Combine(added, "System.Net.Sockets.dll"), DateTime.UtcNow.AddMinutes(1));

        return (install, added);
    }

    /// <summary>Started with the startup hook (--verbose names <paramref name="reason"/>), which
    /// wires the app: every one of its sockets, each from the pool, one address each.</summary>
    private void ServedByTheHook(string[] command, string reason)
    {
        var (exit, output, error) = Sockshim(["run", "--verbose", "--mode", "all", "--", .. command, _serverEndpoint]);
        Assert.That(exit, Is.Zero, output + error);
        Assert.That(error, Does.Contain("start: with the startup hook (").And.Contain(reason).And.Contain(WiredByHook), error);
        var seen = Seen(output);
        Assert.That(seen, Has.Count.EqualTo(11), output);
        Assert.That(seen.All(_pool.Pool.Definition.Contains) && seen.Distinct().Count() == seen.Count, Is.True, output);
    }

    private static string FrameworkSockets => Path.Combine(Path.GetDirectoryName(typeof(object).Assembly.Location)!, "System.Net.Sockets.dll");

    /// <summary>Asked to start without the hook, the launcher keeps it for <paramref name="app"/>
    /// (--verbose names <paramref name="reason"/>), and the hook finds the plain copy loaded and
    /// refuses: exit 97, not one socket opened.</summary>
    private void RefusedByTheHook(string app, string reason) => RefusedByTheHook(["dotnet", app], reason);

    private void RefusedByTheHook(string[] command, string reason)
    {
        var (exit, output, error) = Sockshim(["run", "--verbose", "--", .. command, _serverEndpoint]);
        Assert.That(error, Does.Contain("start: with the startup hook (").And.Contain(reason), error);
        Assert.That(exit, Is.EqualTo(97), output + error);
        Assert.That(error, Does.Contain("the woven System.Net.Sockets was not loaded"));
        Assert.That(Seen(output), Is.Empty, "no socket left unpatched");
    }

    private string CopyOfLegacyApp(string name)
    {
        string dir = Directory.CreateDirectory(Path.Combine(_scratch, name)).FullName;
        foreach (var file in Directory.GetFiles(AppContext.BaseDirectory, "LegacyApp*")) File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
        return dir;
    }
}
