using System.Diagnostics;
using SockShim.Interceptor.Cli;

namespace SockShim.Tests.Interceptor;

/// <summary>`sockshim gc --overlays` in a cache of the test's own: an overlay unused for longer
/// than the idle time is removed (the app file its link leads to is not), one a live process runs
/// from and one a launch just used are kept, and a link planted in apps/ is neither followed nor
/// removed.</summary>
public class OverlaySweepTests
{
    [Test, CancelAfter(60_000)]
    public void Gc_removes_only_overlays_nothing_runs_from_and_no_launch_used_lately()
    {
        using var stack = new TestStack("127.109.0.0/29", name: "sweep");
        var work = Directory.CreateTempSubdirectory("sockshim-sweep-");
        Process? busy = null;
        try
        {
            string cache = Path.Combine(work.FullName, "cache"), apps = Path.Combine(cache, "apps");
            string appFile = Path.Combine(work.FullName, "app.dll");
            File.WriteAllText(appFile, "the app's own file");
            string Overlay(string name, TimeSpan age)
            {
                string dir = Directory.CreateDirectory(Path.Combine(apps, name)).FullName;
                File.WriteAllText(Path.Combine(dir, ".sockshim-overlay"), "sockshim overlay\n");
                File.CreateSymbolicLink(Path.Combine(dir, "app.dll"), appFile);
                File.SetLastWriteTimeUtc(Path.Combine(dir, ".sockshim-overlay"), DateTime.UtcNow - age);
                return dir;
            }
            string old = Overlay("old", TimeSpan.FromHours(2)), fresh = Overlay("fresh", TimeSpan.FromMinutes(1)), running = Overlay("running", TimeSpan.FromHours(2));
            string sleep = Path.Combine(running, "sleep");
            File.Copy("/bin/sleep", sleep);
            File.SetUnixFileMode(sleep, UnixFileMode.UserRead | UnixFileMode.UserExecute);
            busy = Process.Start(sleep, "60");
            string victim = Directory.CreateDirectory(Path.Combine(work.FullName, "victim")).FullName;
            File.WriteAllText(Path.Combine(victim, "keep"), "not SockShim's");
            Directory.CreateSymbolicLink(Path.Combine(apps, "planted"), victim);
            Directory.SetLastWriteTimeUtc(victim, DateTime.UtcNow - TimeSpan.FromHours(2));

            var output = new StringWriter();
            var error = new StringWriter();
            int exit = SockShimCli.Run(["gc", "--overlays", "--cache", cache, "--state-dir", stack.StateDirectory], output, error);

            Assert.That(exit, Is.Zero, output + "" + error);
            Assert.That(Directory.Exists(old), Is.False, "unused for two hours, nothing runs from it: removed");
            Assert.That(File.ReadAllText(appFile), Is.EqualTo("the app's own file"), "the app's file its link led to is untouched");
            Assert.That(Directory.Exists(fresh), Is.True, "a launch used it a minute ago: kept");
            Assert.That(Directory.Exists(running), Is.True, "a live process runs from it: kept");
            Assert.That(File.Exists(Path.Combine(victim, "keep")), Is.True, "a link planted in apps/ is not followed");
            Assert.That(Directory.Exists(Path.Combine(apps, "planted")), Is.True, "nor removed: it is not an overlay this cache made");
            Assert.That(output.ToString(), Does.Contain($"removed overlay {old}").And.Contain($"kept overlay {running} (pid {busy!.Id} runs from it)")
                .And.Contain("1 overlays removed, 1 in use"));
        }
        finally
        {
            busy?.Kill();
            busy?.WaitForExit(10_000);
            work.Delete(recursive: true);
        }
    }
}
