using System.Diagnostics;
using System.Net;
using System.Text.RegularExpressions;

namespace SockShim.Tests.Interceptor;

/// <summary>
/// The clone's ./sockshim as a user types it: the script runs the Native AOT launcher, which
/// on a warm cache does `run` itself and execs the command (the app keeps the pid the user
/// started); a cache without the woven copy is handed to the managed tool, which weaves it. The
/// echo server in another process says which addresses the app's sockets came from.
/// </summary>
[NonParallelizable]
public class NativeLauncherTests() : EchoServerFixture("127.104.0.0/24", "native")
{
    private static string Script => Path.Combine(RepoPaths.Root, "sockshim");

    [OneTimeSetUp]
    public void WarmTheTool()
    {
        // Builds the tool and the launcher if the clone has not yet, and weaves this machine's
        // runtimes into the default cache: the warm state the tests below start from.
        var (exit, output, error) = Programs.Complete(StartScript(["prepare"]), "./sockshim prepare", TimeSpan.FromMinutes(8));
        Assert.That(exit, Is.Zero, output + error);
        Assert.That(File.Exists(Path.Combine(RepoPaths.Root, ".artifacts", "sockshim", "sockshim")), Is.True,
            "the script built the native launcher (its build log: .artifacts/sockshim.build.log)");
    }

    private Process StartScript(IEnumerable<string> args, IDictionary<string, string>? extra = null, string? workingDirectory = null)
    {
        var psi = new ProcessStartInfo(Script) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (workingDirectory is not null) psi.WorkingDirectory = workingDirectory;
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("SOCKSHIM_")).ToList()) psi.Environment.Remove(key);
        if (_pool is not null) foreach (var (k, v) in _pool.Environment) psi.Environment[k] = v;
        if (extra is not null) foreach (var (k, v) in extra) psi.Environment[k] = v;
        return Process.Start(psi)!;
    }

    private List<IPAddress> SeenAddresses(string output)
    {
        var seen = Regex.Matches(output, @"^api=\S+ local=\S+ seen=(\S+)$", RegexOptions.Multiline).Select(m => IPEndPoint.Parse(m.Groups[1].Value).Address).ToList();
        Assert.That(seen, Has.Count.EqualTo(11), output);
        Assert.That(seen.All(_pool.Pool.Definition.Contains), Is.True, $"every socket from the pool: {output}");
        Assert.That(seen.Distinct().Count(), Is.EqualTo(seen.Count), "one address per socket");
        return seen;
    }

    [Test]
    [CancelAfter(180_000)]
    public void On_a_warm_cache_the_native_launcher_runs_the_app_in_the_process_the_user_started()
    {
        using var shell = StartScript(["run", "--verbose", "--", "bash", "-c", "echo \"pid $$\""]);
        int pid = shell.Id;
        var (exit, output, error) = Programs.Complete(shell, "./sockshim run -- bash", TimeSpan.FromMinutes(2));
        Assert.That(exit, Is.Zero, error);
        Assert.That(output.Trim(), Is.EqualTo($"pid {pid}"), "script, launcher and command are one process");
        Assert.That(error, Does.Contain("sockshim: launcher: native"), "no managed start-up on a warm cache");

        var app = Programs.Complete(StartScript(["run", "--mode", "all", "--verbose", "--", "dotnet", Programs.PathOf("LegacyApp"), _serverEndpoint]), "./sockshim run -- LegacyApp", TimeSpan.FromMinutes(2));
        Assert.That(app.Exit, Is.Zero, app.Out + app.Err);
        Assert.That(app.Err, Does.Contain("sockshim: launcher: native"));
        SeenAddresses(app.Out);
        Assert.That(_pool.HeldSlots(), Is.Zero, "every address released when the app ended");
    }

    // The launcher, not the script, looks for changed sources (in its own process): a source
    // newer than the build sends the run back to the script, which rebuilds, then runs it.
    [Test]
    [CancelAfter(600_000)]
    public void A_source_changed_after_the_build_is_built_before_the_command_runs()
    {
        string stamp = Path.Combine(RepoPaths.Root, ".artifacts", "sockshim", ".built");
        var before = File.GetLastWriteTimeUtc(stamp);
        File.SetLastWriteTimeUtc(Path.Combine(RepoPaths.Root, "Stack", "AddressStack.cs"), DateTime.UtcNow);
        // As root the build gets none of the caller's variables: MSBuild takes each as a property,
        // and CustomBeforeMicrosoftCommonProps names a file it imports (sudo -E keeps it).
        var planted = Directory.CreateTempSubdirectory("sockshim-planted-props-");
        string marker = Path.Combine(planted.FullName, "planted-build-ran");
        File.WriteAllText(Path.Combine(planted.FullName, "planted.props"),
            $"""<Project><Target Name="Planted" BeforeTargets="Build;Restore;_GenerateRestoreGraph"><Exec Command="echo ran &gt; {marker}" /></Target></Project>""");
        // SOCKSHIM_REBUILT is the script's word to the launcher, never the caller's: a stray one
        // in the environment must not skip the check.
        // And the build runs in the clone: a global.json in the caller's working directory (the SDK
        // reads it from there up; in .NET 10 it can name any SDK) is not the build's.
        File.WriteAllText(Path.Combine(planted.FullName, "global.json"), """{ "sdk": { "version": "1.0.0" } }""");
        int exit;
        string output, error;
        bool plantedRan;
        try
        {
            (exit, output, error) = Programs.Complete(StartScript(["run", "--", "bash", "-c", "echo ran"], new Dictionary<string, string>
                {
                    ["SOCKSHIM_REBUILT"] = "1",
                    ["CustomBeforeMicrosoftCommonProps"] = Path.Combine(planted.FullName, "planted.props"),
                }, workingDirectory: planted.FullName),
                "./sockshim run after a source changed", TimeSpan.FromMinutes(8));
            plantedRan = File.Exists(marker);
        }
        finally { planted.Delete(recursive: true); }
        // (An ordinary account's build is its own: its environment counts there.)
        Assert.That(plantedRan, Is.EqualTo(!Environment.IsPrivilegedProcess), "the props the caller's environment named were imported only into a build that is not root's");
        Assert.That(exit, Is.Zero, error);
        Assert.That(output.Trim(), Is.EqualTo("ran"));
        Assert.That(File.GetLastWriteTimeUtc(stamp), Is.GreaterThan(before), "the tool was built again");
        var again = Programs.Complete(StartScript(["run", "--verbose", "--", "true"]), "./sockshim run once more", TimeSpan.FromMinutes(2));
        Assert.That(again.Err, Does.Contain("sockshim: launcher: native"), "and the rebuilt launcher runs the next command");
    }

    [Test]
    [CancelAfter(600_000)]
    public void A_cache_without_the_woven_copy_is_handed_to_the_managed_tool_which_weaves_it()
    {
        var cache = Directory.CreateTempSubdirectory("sockshim-native-cache-");
        try
        {
            var app = Programs.Complete(StartScript(["run", "--mode", "all", "--verbose", "--", "dotnet", Programs.PathOf("LegacyApp"), _serverEndpoint],
                new Dictionary<string, string> { ["SOCKSHIM_CACHE"] = cache.FullName }), "./sockshim run with an empty cache", TimeSpan.FromMinutes(8));
            Assert.That(app.Exit, Is.Zero, app.Out + app.Err);
            Assert.That(app.Err, Does.Contain("is not woven in").And.Contain("the managed tool weaves it"), "the native launcher said why it handed over");
            Assert.That(app.Err, Does.Contain("sockshim: weaving ").And.Contain("sockshim: launcher: the managed tool"));
            SeenAddresses(app.Out);
            Assert.That(Directory.EnumerateFiles(cache.FullName, "System.Net.Sockets.dll.ok", SearchOption.AllDirectories).Count(), Is.GreaterThan(0), "the copy is now in that cache");
        }
        finally
        {
            cache.Delete(recursive: true);
        }
    }
}
