using System.Diagnostics;
using System.Text;

namespace SockShim.Tests.Interceptor;

/// <summary>
/// Root serving a self-contained app of another account must not let that account choose what a
/// later run of root's own app loads. The account's app directory is theirs: every byte, name and
/// time in it is their word. LegacyApp is published self-contained once, in a private directory
/// (as DeploymentKindsTests does).
/// </summary>
[NonParallelizable]
public class OverlayTrustTests
{
    private DirectoryInfo _work = null!;
    private string _published = "";
    private static readonly string Original = "DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT", Planted = "MALLORY_WAS_HERE_MALLORY_WAS_HERE_MALL";

    [OneTimeSetUp]
    public void Publish()
    {
        SockShim.Tests.Network.TwoHosts.RequireRoot();
        _work = Directory.CreateTempSubdirectory("sockshim-overlay-trust-");
        _published = new LegacyAppPublish(_work.FullName).To("published", "--self-contained", "true");
    }

    [OneTimeTearDown]
    public void Remove() => _work?.Delete(recursive: true);

    private string CopyOfPublished(string name)
    {
        string target = Path.Combine(_work.FullName, name);
        Assert.That(Process.Start("cp", ["-a", _published, target])!.WaitForExit(60_000), Is.True);
        return target;
    }

    private static bool Holds(string file, string text) => File.ReadAllBytes(file).AsSpan().IndexOf(Encoding.Unicode.GetBytes(text)) >= 0;

    /// <summary>The overlay a `prepare` printed as the app's copy.</summary>
    private static string Prepare(string cache, string app)
    {
        var (exit, stdout, stderr) = Programs.Run("SockShim.Interceptor", ["prepare", "--cache", cache, app], timeout: TimeSpan.FromMinutes(4));
        Assert.That(exit, Is.Zero, stdout + stderr);
        string last = stdout.Trim().Split('\n')[^1];
        Assert.That(last, Does.StartWith($"app {app}: self-contained on its own runtime ").And.Contain(" started from "));
        return Path.GetDirectoryName(last[(last.IndexOf(" started from ") + " started from ".Length)..].Replace(" (cached)", ""))!;
    }

    /// <summary>Root's app (copied without its times, so its System.Net.Sockets.dll differs from
    /// the installed runtime's in time alone) and another account's app whose
    /// System.Net.Sockets.dll has the same version, MVID, length and time but other bytes (a
    /// string literal of the same length replaced, standing for any code). Root prepares the
    /// other account's app first, then its own: its own overlay carries the copy woven from its
    /// own bytes, not the other's (keyed by version, MVID, length and time, it carried theirs, and
    /// the startup hook, comparing those, passed it).</summary>
    [Test, CancelAfter(600_000)]
    public void Another_accounts_app_cannot_choose_the_woven_copy_roots_own_app_loads()
    {
        var time = new DateTime(2026, 1, 2, 3, 4, 5, DateTimeKind.Utc);
        string victim = CopyOfPublished("victim");
        File.SetLastWriteTimeUtc(Path.Combine(victim, "System.Net.Sockets.dll"), time);

        string mallory = CopyOfPublished("mallory");
        string planted = Path.Combine(mallory, "System.Net.Sockets.dll");
        byte[] bytes = File.ReadAllBytes(planted);
        int at = bytes.AsSpan().IndexOf(Encoding.Unicode.GetBytes(Original));
        Assert.That(at, Is.GreaterThan(0), "the literal to replace is in the app's System.Net.Sockets.dll");
        Encoding.Unicode.GetBytes(Planted).CopyTo(bytes, at);
        File.WriteAllBytes(planted, bytes);
        File.SetLastWriteTimeUtc(planted, time);
        Assert.That(Process.Start("chown", ["-R", "nobody", mallory])!.WaitForExit(60_000), Is.True);

        string cache = Path.Combine(_work.FullName, "cache");
        string theirs = Prepare(cache, Path.Combine(mallory, "LegacyApp"));
        Assert.That(Holds(Path.Combine(theirs, "System.Net.Sockets.dll"), Planted), Is.True, "their bytes were woven into their own copy: the check below can fail");

        string ours = Prepare(cache, Path.Combine(victim, "LegacyApp"));
        string loaded = Path.Combine(ours, "System.Net.Sockets.dll");
        Assert.That(Holds(loaded, Planted), Is.False, "root's own app loads nothing woven from the other account's file");
        Assert.That(Holds(loaded, Original), Is.True, "it loads the copy woven from its own");
        Assert.That(Holds(planted, Planted), Is.True, "their file is as they left it");
    }

    /// <summary>The third review: root's own app and another account's with the same
    /// System.Net.Sockets.dll, the other's with a System.Private.CoreLib.dll of its own (here the
    /// same assembly with bytes appended, standing for any other code: the reviewer's, rewritten
    /// with Mono.Cecil, changed the compiled copy). A weave reads CoreLib: the weaver resolves
    /// types in it and crossgen2 compiles against it, inlining its code. Keyed by
    /// System.Net.Sockets alone, the copy compiled against the other account's CoreLib was the one
    /// root's own app got. Root prepares the other account's app first, then its own: its own is
    /// woven anew, keyed by what it was woven from.</summary>
    [Test, CancelAfter(600_000)]
    public void Another_accounts_references_cannot_choose_the_woven_copy_roots_own_app_loads()
    {
        string victim = CopyOfPublished("victim-references");
        string mallory = CopyOfPublished("mallory-references");
        string coreLib = Path.Combine(mallory, "System.Private.CoreLib.dll");
        var time = File.GetLastWriteTimeUtc(coreLib);
        using (var file = new FileStream(coreLib, FileMode.Append)) file.Write(new byte[64]);
        File.SetLastWriteTimeUtc(coreLib, time);
        Assert.That(File.ReadAllBytes(Path.Combine(mallory, "System.Net.Sockets.dll")), Is.EqualTo(File.ReadAllBytes(Path.Combine(victim, "System.Net.Sockets.dll"))),
            "the two apps' System.Net.Sockets.dll are the same bytes");
        Assert.That(Process.Start("chown", ["-R", "nobody", mallory])!.WaitForExit(60_000), Is.True);

        string cache = Path.Combine(_work.FullName, "cache-references");
        Prepare(cache, Path.Combine(mallory, "LegacyApp"));
        var theirs = OwnCopies(cache);
        Assert.That(theirs, Has.Count.EqualTo(1), "one copy woven from the other account's app");
        Prepare(cache, Path.Combine(victim, "LegacyApp"));
        var both = OwnCopies(cache);
        Assert.That(both, Has.Count.EqualTo(2), "root's app was woven from its own files, not given the copy woven against the other account's CoreLib");
        Assert.That(both, Is.SupersetOf(theirs));
    }

    /// <summary>The third review: the app's own files an overlay copies were copied with
    /// File.Copy, which waits for ever on a FIFO another account puts in place of its main dll.
    /// Root's `prepare` says what is wrong in one line instead, and returns.</summary>
    [Test, CancelAfter(300_000)]
    public void A_fifo_for_the_apps_dll_is_refused_not_waited_on()
    {
        string mallory = CopyOfPublished("mallory-fifo");
        string dll = Path.Combine(mallory, "LegacyApp.dll");
        File.Delete(dll);
        Assert.That(Process.Start("mkfifo", [dll])!.WaitForExit(10_000), Is.True);
        Assert.That(Process.Start("chown", ["-R", "nobody", mallory])!.WaitForExit(60_000), Is.True);
        var (exit, stdout, stderr) = Programs.Run("SockShim.Interceptor", ["prepare", "--cache", Path.Combine(_work.FullName, "cache-fifo"), Path.Combine(mallory, "LegacyApp")],
            timeout: TimeSpan.FromMinutes(4));
        Assert.That(exit, Is.Not.Zero, stdout + stderr);
        Assert.That(stderr.Trim().Split('\n'), Has.Length.EqualTo(1), stderr);
        Assert.That(stderr, Does.Contain($"{dll} is not a regular file").And.Not.Contain("   at "));
    }

    /// <summary>The store's copies woven from an app's own runtime (their stamp a hash of what they
    /// were woven from; an installed runtime's is two hex numbers with an x between).</summary>
    private static List<string> OwnCopies(string cache) =>
        Directory.GetDirectories(Path.Combine(cache, "store", "x64", "net10.0", "sockshim.woven.sockets"))
            .Select(Path.GetFileName).OfType<string>().Where(name => name.Split('-') is { Length: >= 4 } parts && !parts[2].Contains('x')).Order().ToList();
}
