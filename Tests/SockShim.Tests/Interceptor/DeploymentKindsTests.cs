using System.Security.Cryptography;

namespace SockShim.Tests.Interceptor;

/// <summary>LegacyApp published every way .NET apps ship, each under `sockshim run`. Those it
/// serves — framework-dependent, self-contained, single-file (framework-dependent and
/// self-contained), trimmed self-contained — get a pool address for every API, as the echo
/// server in another process sees, and their published files are byte for byte what they were.
/// Those no check inside the app could catch — trimmed single-file, a trimmed app of a runtime
/// not installed, startup hooks switched off, Native AOT — are refused before they start (exit 97, one line naming the file and setting, why, what to
/// change), and the echo server proves the app never ran. The same binaries started plainly
/// reach the server from 127.0.0.1, so every check here can fail.</summary>
[NonParallelizable]
public class DeploymentKindsTests
{
    private TestStack _pool = null!;
    private DirectoryInfo _work = null!;
    private string _trimmed = "", _hooksOff = "", _aot = "", _singleTrimmed = "", _single = "";
    private string _frameworkDependent = "", _selfContained = "", _singleFrameworkDependent = "";

    /// <summary>Publishing is the slow part, done once (<see cref="LegacyAppPublish"/>).</summary>
    [OneTimeSetUp]
    public void Publish()
    {
        _pool = new TestStack("127.108.0.0/24", name: "deployments");
        _work = Directory.CreateTempSubdirectory("sockshim-deployments-");
        _overlaysBefore = Directory.Exists(Overlays) ? Directory.GetDirectories(Overlays) : [];
        var publish = new LegacyAppPublish(_work.FullName);
        _trimmed = Path.Combine(publish.To("trimmed", "--self-contained", "true", "-p:PublishTrimmed=true"), "LegacyApp");
        _hooksOff = Path.Combine(publish.To("hooks-off", "--self-contained", "false", "-p:StartupHookSupport=false"), "LegacyApp.dll");
        _aot = Path.Combine(publish.To("aot", "-p:PublishAot=true"), "LegacyApp");
        _singleTrimmed = Path.Combine(publish.To("single-trimmed", "--self-contained", "true", "-p:PublishSingleFile=true", "-p:PublishTrimmed=true"), "LegacyApp");
        _single = Path.Combine(publish.To("single", "--self-contained", "true", "-p:PublishSingleFile=true"), "LegacyApp");
        _frameworkDependent = Path.Combine(publish.To("framework-dependent", "--self-contained", "false"), "LegacyApp");
        _selfContained = Path.Combine(publish.To("self-contained", "--self-contained", "true"), "LegacyApp");
        _singleFrameworkDependent = Path.Combine(publish.To("single-framework-dependent", "--self-contained", "false", "-p:PublishSingleFile=true"), "LegacyApp");
    }

    [OneTimeTearDown]
    public void Remove()
    {
        _pool?.Dispose();
        _work?.Delete(recursive: true);
        // The overlays these runs made in the account's cache (a rebundled copy is some 70 MB):
        // the fixture runs alone, so every overlay that was not there before is one of them.
        if (Directory.Exists(Overlays))
            foreach (var made in Directory.GetDirectories(Overlays).Except(_overlaysBefore))
                Directory.Delete(made, recursive: true);
    }

    private static string Overlays => Path.Combine(SockShim.Interceptor.Store.WovenStore.DefaultRoot, "apps");
    private string[] _overlaysBefore = [];

    /// <summary>An echo server of this test's own; what it printed once stopped (a line
    /// "tcp peer ..." / "udp peer ..." for everything it served).</summary>
    private (int Exit, string AppOut, string AppErr, string ServerSaw) AgainstServer(Func<string, (int, string, string)> run)
    {
        var (server, endpoint) = Programs.StartEcho(_pool.StateDirectory, timeoutSeconds: 120);
        File.Delete(Path.Combine(_pool.StateDirectory, "echo-ready"));
        using (server)
        {
            var (exit, stdout, stderr) = run(endpoint);
            server.Kill();
            Assert.That(server.WaitForExit(TimeSpan.FromSeconds(20)), Is.True, "the echo server stopped");
            return (exit, stdout, stderr, server.StandardOutput.ReadToEnd());
        }
    }

    private (int, string, string) UnderLauncher(string[] command, string endpoint) =>
        Programs.Run("SockShim.Interceptor", ["run", "--", .. command, endpoint], _pool.Environment, TimeSpan.FromMinutes(3));

    private void AssertRefusedBeforeStart(string[] command, string file, params string[] says)
    {
        var (plainExit, plainOut, _, plainSaw) = AgainstServer(endpoint => Programs.RunFile(command[0], [.. command[1..], endpoint], TimeSpan.FromMinutes(1)));
        Assert.That(plainExit, Is.Zero, plainOut);
        Assert.That(plainOut, Does.Contain("api=socket-sync local=127.0.0.1:"), "started plainly, the binary runs unpatched");
        Assert.That(plainSaw, Does.Contain("tcp peer 127.0.0.1:"), "and the server sees it: the check below can fail");

        var (exit, stdout, stderr, saw) = AgainstServer(endpoint => UnderLauncher(command, endpoint));
        Assert.That(exit, Is.EqualTo(97), stdout + stderr);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(1), "one line: " + stderr);
        Assert.That(lines[0], Does.StartWith("sockshim: not starting the app: " + file));
        foreach (var text in says) Assert.That(lines[0], Does.Contain(text));
        Assert.That(lines[0], Does.EndWith("(exit code 97)"));
        Assert.That(stdout, Is.Empty, "the app printed nothing: it never ran");
        Assert.That(saw, Does.Not.Contain(" peer "), "the server saw nothing from it");
    }

    /// <summary>Its code runs on the installed runtime of its version, from an overlay whose
    /// runtimeconfig names that runtime and whose LegacyApp.dll has bodies for the methods the
    /// trimmer removed (without them it stops at its first await: TypeLoadException).</summary>
    [Test, CancelAfter(600_000)]
    public void A_trimmed_self_contained_app_gets_an_address_per_socket()
    {
        AssertServed(_trimmed, "the trimmed self-contained app");
        var (exit, _, stderr) = Programs.Run("SockShim.Interceptor", ["run", "--verbose", "--", _trimmed, "--start"], _pool.Environment, TimeSpan.FromMinutes(3));
        Assert.That(exit, Is.Zero, stderr);
        string runtime = Path.GetFileName(SockShim.Interceptor.Store.InstalledRuntimes.Find().Last().Directory);
        Assert.That(stderr, Does.Contain("trimmed self-contained app: its code started from the overlay ").And.Contain($" on the installed runtime {runtime}"));
        string overlay = stderr.Split('\n').Single(l => l.Contains("its code started from the overlay ")).Split("the overlay ")[1].Split(' ')[0];
        Assert.That(File.ReadAllText(Path.Combine(overlay, "LegacyApp.runtimeconfig.json")), Does.Contain("\"System.StartupHookProvider.IsSupported\": true")
            .And.Contain("\"framework\"").And.Not.Contain("includedFrameworks"), "framework-dependent, startup hooks on");
        Assert.That(File.Exists(Path.Combine(overlay, "System.Private.CoreLib.dll")), Is.False, "the app's trimmed framework is left out");
    }

    /// <summary>A trimmed app whose runtime version is not installed (its runtimeconfig says 9.0.5
    /// here) is refused before it starts, naming the version to install.</summary>
    [Test, CancelAfter(300_000)]
    public void A_trimmed_app_of_a_runtime_not_installed_is_refused_before_it_starts()
    {
        string copy = CopyOf(_trimmed, "trimmed-9");
        string config = Path.Combine(copy, "LegacyApp.runtimeconfig.json");
        string version = SockShim.Interceptor.Store.InstalledRuntimes.Find().Last().Version;
        File.WriteAllText(config, File.ReadAllText(config).Replace($"\"version\": \"{version}\"", "\"version\": \"9.0.5\""));
        Assert.That(File.ReadAllText(config), Does.Contain("9.0.5"));
        string app = Path.Combine(copy, "LegacyApp");
        var (exit, stdout, stderr, saw) = AgainstServer(endpoint => UnderLauncher([app], endpoint));
        Assert.That(exit, Is.EqualTo(97), stdout + stderr);
        Assert.That(stderr.Trim(), Does.StartWith($"sockshim: not starting the app: {app} is trimmed (PublishTrimmed)")
            .And.Contain("no 9.0.x is installed in").And.Contain("(it carries 9.0.5)").And.Contain("Install that runtime, or publish the app without PublishTrimmed").And.EndWith("(exit code 97)"));
        Assert.That(stderr.Trim().Split('\n'), Has.Length.EqualTo(1), stderr);
        Assert.That(stdout, Is.Empty, "the app never ran");
        Assert.That(saw, Does.Not.Contain(" peer "), "the server saw nothing from it");
    }

    /// <summary>A trimmed app whose runtimeconfig no longer says startup hooks are off (its owner
    /// removed the line) would be taken for an untrimmed self-contained app, started on its own
    /// framework whose hook code the trimmer removed: refused, since its CoreLib lacks that code.</summary>
    [Test, CancelAfter(300_000)]
    public void A_trimmed_app_whose_runtimeconfig_hides_it_is_refused_before_it_starts()
    {
        string copy = CopyOf(_trimmed, "trimmed-hidden");
        string config = Path.Combine(copy, "LegacyApp.runtimeconfig.json");
        var lines = File.ReadAllLines(config);
        File.WriteAllLines(config, lines.Where(l => !l.Contains("System.StartupHookProvider.IsSupported")));
        Assert.That(File.ReadAllLines(config), Has.Length.EqualTo(lines.Length - 1));
        string app = Path.Combine(copy, "LegacyApp");
        AssertRefusedBeforeStart([app], app + " runs on a trimmed System.Private.CoreLib without the startup hook's code",
            "does not switch startup hooks off", "would run unpatched", "Publish it again");
    }

    /// <summary>`compare` refuses what `run` refuses: the trimmed single-file app's patched run
    /// would be unpatched, and the report would call the two runs the same.</summary>
    [Test, CancelAfter(300_000)]
    public void Compare_refuses_a_trimmed_single_file_app_before_it_starts()
    {
        var (exit, stdout, stderr, saw) = AgainstServer(endpoint =>
            Programs.Run("SockShim.Interceptor", ["compare", "--", _singleTrimmed, endpoint], _pool.Environment, TimeSpan.FromMinutes(3)));
        Assert.That(exit, Is.EqualTo(97), stdout + stderr);
        Assert.That(stderr.Trim(), Does.StartWith("sockshim compare: not starting the app: " + _singleTrimmed + " (its bundled runtimeconfig.json)")
            .And.Contain("PublishTrimmed").And.EndWith("(exit code 97)"));
        Assert.That(stdout, Is.Empty, "no report");
        Assert.That(saw, Does.Not.Contain(" peer "), "the app never ran, in either run");
    }

    /// <summary>Its runtimeconfig is inside the bundle (read from the bundle header).</summary>
    [Test, CancelAfter(300_000)]
    public void A_trimmed_single_file_app_is_refused_before_it_starts()
    {
        AssertRefusedBeforeStart([_singleTrimmed], _singleTrimmed + " (its bundled runtimeconfig.json) sets System.StartupHookProvider.IsSupported=false",
            "PublishTrimmed", "would run unpatched", "Publish it without PublishSingleFile (trimmed in a folder is served), or without PublishTrimmed.");
    }

    /// <summary>A copy of the published folder of <paramref name="app"/> (an apphost named
    /// LegacyApp) in the folder <paramref name="name"/>, the apphost still executable.</summary>
    private string CopyOf(string app, string name)
    {
        string copy = Directory.CreateDirectory(Path.Combine(_work.FullName, name)).FullName;
        foreach (var file in Directory.EnumerateFiles(Path.GetDirectoryName(app)!))
            File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
        File.SetUnixFileMode(Path.Combine(copy, "LegacyApp"), File.GetUnixFileMode(app));
        return copy;
    }

    /// <summary>The SHA-256 of every file under <paramref name="directory"/>, by relative path.</summary>
    private static SortedDictionary<string, string> Hashes(string directory) =>
        new(Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(directory, f), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f)))), StringComparer.Ordinal);

    /// <summary>Started plainly the app reaches the server from 127.0.0.1; under the launcher
    /// every one of its APIs from its own pool address, none from 127.0.0.1, and its published
    /// files are unchanged.</summary>
    private void AssertServed(string app, string kind)
    {
        string published = Path.GetDirectoryName(app)!;
        var before = Hashes(published);

        var (plainExit, plainOut, _, plainSaw) = AgainstServer(endpoint => Programs.RunFile(app, [endpoint], TimeSpan.FromMinutes(1)));
        Assert.That(plainExit, Is.Zero, plainOut);
        Assert.That(plainSaw, Does.Contain("tcp peer 127.0.0.1:"), $"{kind} started plainly reaches the server from 127.0.0.1: the checks below can fail");

        var (exit, stdout, stderr, saw) = AgainstServer(endpoint => UnderLauncher([app], endpoint));
        Assert.That(exit, Is.Zero, $"{kind} under the launcher: {stdout}{stderr}");
        var apis = stdout.Split('\n').Where(l => l.StartsWith("api=")).ToList();
        Assert.That(apis, Has.Count.EqualTo(11).And.All.Not.Contain("error="), stdout);
        var peers = saw.Split('\n').Where(l => l.Contains(" peer ")).Select(l => l.Split(' ')[2].Split(':')[0]).ToList();
        Assert.That(peers, Has.Count.EqualTo(11), $"the server saw every API of {kind}: {saw}");
        Assert.That(peers, Is.All.StartWith("127.108.0."), $"every socket of {kind} from the pool, none from 127.0.0.1: {saw}");
        Assert.That(peers.Distinct().Count(), Is.EqualTo(11), $"each API its own address: {saw}");

        Assert.That(Hashes(published), Is.EqualTo(before), $"the published files of {kind} are byte for byte unchanged");
    }

    [Test, CancelAfter(300_000)]
    public void A_framework_dependent_app_gets_an_address_per_socket() => AssertServed(_frameworkDependent, "the framework-dependent apphost");

    /// <summary>Started from its overlay in the cache with its own runtime's System.Net.Sockets woven.</summary>
    [Test, CancelAfter(300_000)]
    public void A_self_contained_app_gets_an_address_per_socket() => AssertServed(_selfContained, "the self-contained app");

    [Test, CancelAfter(300_000)]
    public void A_framework_dependent_single_file_app_gets_an_address_per_socket() => AssertServed(_singleFrameworkDependent, "the framework-dependent single-file app");

    /// <summary>Started from a rebundled copy in the cache whose System.Net.Sockets is woven.</summary>
    [Test, CancelAfter(300_000)]
    public void A_self_contained_single_file_app_gets_an_address_per_socket() => AssertServed(_single, "the self-contained single-file app");

    /// <summary>`sockshim prepare APP` makes the app's copy ahead of time, saying what it does; a
    /// later run with the same cache weaves nothing and starts the copy it made.</summary>
    [Test, CancelAfter(900_000)]
    public void Prepare_makes_a_single_file_apps_copy_ahead_and_run_then_starts_it_from_the_cache()
    {
        string cache = Path.Combine(_work.FullName, "prepare-cache");
        var (exit, stdout, stderr) = Programs.Run("SockShim.Interceptor", ["prepare", "--cache", cache, _single], timeout: TimeSpan.FromMinutes(8));
        Assert.That(exit, Is.Zero, stdout + stderr);
        Assert.That(stdout, Does.Contain($"reading the bundle of {_single} (").And.Contain("weaving ").And.Contain("compiling ReadyToRun").And.Contain("overlay: " + cache));
        string last = stdout.Trim().Split('\n')[^1];
        Assert.That(last, Does.StartWith($"app {_single}: single-file on its own runtime ").And.Contain(" started from " + cache));
        string copy = last[(last.IndexOf(" started from ") + " started from ".Length)..];
        Assert.That(File.Exists(copy), Is.True, copy);

        var (runExit, runOut, runErr, saw) = AgainstServer(endpoint =>
            Programs.Run("SockShim.Interceptor", ["run", "--cache", cache, "--verbose", "--", _single, endpoint], _pool.Environment, TimeSpan.FromMinutes(3)));
        Assert.That(runExit, Is.Zero, runOut + runErr);
        Assert.That(runErr, Does.Contain($"started from its overlay {Path.GetDirectoryName(copy)} (cached)").And.Contain("command: " + copy));
        Assert.That(runErr, Does.Not.Contain("weaving "), "nothing is woven again");
        Assert.That(saw.Split('\n').Count(l => l.Contains(" peer 127.108.0.")), Is.EqualTo(11), saw);
    }

    /// <summary>An overlay is made from what the app is: republished (its main dll rewritten) it
    /// gets a new one; an overlay whose woven copy was changed after it was made is not used but
    /// made again; either way the app is still served.</summary>
    [Test, CancelAfter(600_000)]
    public void A_changed_app_or_a_changed_overlay_gets_a_new_overlay()
    {
        string copy = CopyOf(_selfContained, "republished");
        string app = Path.Combine(copy, "LegacyApp");

        string Overlay(string because)
        {
            var (exit, stdout, stderr, saw) = AgainstServer(endpoint => Programs.Run("SockShim.Interceptor", ["run", "--verbose", "--", app, endpoint], _pool.Environment, TimeSpan.FromMinutes(3)));
            Assert.That(exit, Is.Zero, $"{because}: {stdout}{stderr}");
            Assert.That(saw.Split('\n').Count(l => l.Contains(" peer 127.108.0.")), Is.EqualTo(11), $"{because}: served from the pool: {saw}");
            var line = stderr.Split('\n').Single(l => l.Contains("self-contained app: started from its overlay "));
            return line[(line.IndexOf("its overlay ") + "its overlay ".Length)..].Split(' ')[0].TrimEnd(',');
        }

        string first = Overlay("first run");
        Assert.That(new FileInfo(Path.Combine(first, "System.Private.CoreLib.dll")).LinkTarget, Is.EqualTo(Path.Combine(copy, "System.Private.CoreLib.dll")), "the overlay links to the app's files");
        Assert.That(Overlay("second run"), Is.EqualTo(first), "the same app: the same overlay");
        Assert.That(new FileInfo(Path.Combine(first, "LegacyApp.runtimeconfig.json")).LinkTarget, Is.Null,
            "the runtimeconfig is a copy, the one checked for startup hooks switched off: the app's owner cannot switch them off after the check");

        File.WriteAllBytes(Path.Combine(copy, "LegacyApp.dll"), File.ReadAllBytes(Path.Combine(copy, "LegacyApp.dll"))); // republished: same name, new file
        string second = Overlay("after the app's dll was rewritten");
        Assert.That(second, Is.Not.EqualTo(first), "a changed app gets a new overlay");

        string woven = Path.Combine(second, "System.Net.Sockets.dll");
        var bytes = File.ReadAllBytes(woven);
        bytes[^1] ^= 0xff;
        File.WriteAllBytes(woven, bytes);
        Assert.That(Overlay("after the overlay's woven copy was changed"), Is.EqualTo(second), "made again in its place");
        Assert.That(File.ReadAllBytes(woven)[^1], Is.EqualTo((byte)(bytes[^1] ^ 0xff)), "the changed copy was replaced by the woven one");
    }

    [Test, CancelAfter(300_000)]
    public void An_app_with_startup_hooks_switched_off_is_refused_before_it_starts()
    {
        AssertRefusedBeforeStart(["dotnet", _hooksOff], Path.ChangeExtension(_hooksOff, ".runtimeconfig.json"),
            "System.StartupHookProvider.IsSupported=false", "would run unpatched",
            "Publish it without StartupHookSupport=false", "or remove that setting from the file");
    }

    /// <summary>`dotnet exec --runtimeconfig FILE app.dll`: the host reads FILE, not the app's own
    /// runtimeconfig, so FILE is what is checked (the app's own says hooks on; checked alone, the
    /// app ran with them off, unpatched).</summary>
    [Test, CancelAfter(300_000)]
    public void An_exec_with_a_runtimeconfig_that_switches_startup_hooks_off_is_refused_before_it_starts()
    {
        string hooksOffConfig = Path.ChangeExtension(_hooksOff, ".runtimeconfig.json");
        AssertRefusedBeforeStart(["dotnet", "exec", "--runtimeconfig", hooksOffConfig, _frameworkDependent + ".dll"], hooksOffConfig,
            "System.StartupHookProvider.IsSupported=false", "would run unpatched");
    }

    [Test, CancelAfter(300_000)]
    public void A_native_AOT_app_is_refused_before_it_starts()
    {
        AssertRefusedBeforeStart([_aot], _aot + " is a Native AOT app",
            "no IL of System.Net.Sockets to weave", "A later version will serve Native AOT apps; publish without PublishAot.");
    }

    /// <summary>The detection leaves alone what the startup hook serves: the framework-dependent
    /// LegacyApp (hooks on) still runs, every socket from the pool.</summary>
    [Test, CancelAfter(300_000)]
    public void A_framework_dependent_app_with_hooks_on_still_runs_patched()
    {
        var (exit, stdout, stderr, saw) = AgainstServer(endpoint => UnderLauncher(["dotnet", Programs.PathOf("LegacyApp")], endpoint));
        Assert.That(exit, Is.Zero, stdout + stderr);
        Assert.That(saw, Does.Contain("tcp peer 127.108.0."), "served from the pool");
        Assert.That(saw, Does.Not.Contain("tcp peer 127.0.0.1:"));
    }
}
