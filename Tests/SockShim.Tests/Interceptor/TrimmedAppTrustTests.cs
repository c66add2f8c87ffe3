using System.Diagnostics;

namespace SockShim.Tests.Interceptor;

/// <summary>
/// Root serving a trimmed self-contained app another account owns: every file of its folder is
/// that account's word (here the account is `nobody`, owning a copy of LegacyApp published
/// trimmed). What the .NET host would still start must not start unpatched, and what SockShim
/// reads itself (runtimeconfig, deps.json, the app's assemblies) is bounded and never a stack
/// trace: the launcher runs with a 200 MB heap limit, so a file that made it read gigabytes
/// fails the test.
/// </summary>
[NonParallelizable]
public class TrimmedAppTrustTests
{
    private TestStack _pool = null!;
    private DirectoryInfo _work = null!;
    private string _published = "", _cache = "";
    private static readonly Dictionary<string, string> SmallHeap = new() { ["DOTNET_GCHeapHardLimit"] = "0xC800000" };

    [OneTimeSetUp]
    public void Publish()
    {
        SockShim.Tests.Network.TwoHosts.RequireRoot();
        _pool = new TestStack("127.109.0.0/24", name: "trimmed-trust");
        _work = Directory.CreateTempSubdirectory("sockshim-trimmed-trust-");
        _cache = Path.Combine(_work.FullName, "cache");
        _published = new LegacyAppPublish(_work.FullName).To("published", "--self-contained", "true", "-p:PublishTrimmed=true");
    }

    [OneTimeTearDown]
    public void Remove()
    {
        _pool?.Dispose();
        _work?.Delete(recursive: true);
    }

    /// <summary>A copy of the trimmed app, changed by <paramref name="change"/> (given its
    /// folder), then handed to `nobody`; its executable.</summary>
    private string Hostile(string name, Action<string> change)
    {
        string target = Path.Combine(_work.FullName, name);
        Assert.That(Process.Start("cp", ["-a", _published, target])!.WaitForExit(60_000), Is.True);
        change(target);
        Assert.That(Process.Start("chown", ["-R", "--no-dereference", "nobody", target])!.WaitForExit(60_000), Is.True);
        return Path.Combine(target, "LegacyApp");
    }

    private static void Rewrite(string file, Func<string, string> change)
    {
        string before = File.ReadAllText(file), after = change(before);
        Assert.That(after, Is.Not.EqualTo(before), $"{file} was changed");
        File.WriteAllText(file, after);
    }

    private static void AssertOneLine(int exit, string stdout, string stderr, int expected, params string[] says)
    {
        Assert.That(exit, Is.EqualTo(expected), stdout + stderr);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(1), "one line, no stack trace: " + stderr);
        foreach (var text in says) Assert.That(lines[0], Does.Contain(text));
    }

    private (int Exit, string Out, string Err) Prepare(string app) =>
        Programs.Run("SockShim.Interceptor", ["prepare", "--cache", _cache, app], SmallHeap, TimeSpan.FromMinutes(3));

    /// <summary>The .NET host reads a runtimeconfig with comments and with anything after its
    /// object; System.Text.Json does not. Such a file said "startup hooks on, not self-contained"
    /// to the check, so the trimmed app started as it is, on its own trimmed runtime where the
    /// startup hook is compiled out: every socket from 127.0.0.1, exit 0. Now refused before it
    /// starts (exit 97, one line), and the echo server sees nothing from it.</summary>
    [TestCase("comment"), TestCase("trailing")]
    [CancelAfter(300_000)]
    public void A_runtimeconfig_only_the_host_can_read_does_not_start_the_app_unpatched(string how)
    {
        string app = Hostile("config-" + how, folder => Rewrite(Path.Combine(folder, "LegacyApp.runtimeconfig.json"),
            text => how == "comment" ? "// published\n" + text : text + "\n]]} not JSON"));

        var (plainExit, plainOut, plainErr) = Programs.RunFile(app, ["--start"], TimeSpan.FromMinutes(1));
        Assert.That(plainExit, Is.Zero, $"the .NET host itself starts the app with this runtimeconfig: {plainOut}{plainErr}");

        var (server, endpoint) = Programs.StartEcho(_pool.StateDirectory, timeoutSeconds: 120);
        File.Delete(Path.Combine(_pool.StateDirectory, "echo-ready"));
        int exit;
        string stdout, stderr, saw;
        using (server)
        {
            (exit, stdout, stderr) = Programs.Run("SockShim.Interceptor", ["run", "--cache", _cache, "--", app, endpoint], _pool.Environment, TimeSpan.FromMinutes(3));
            server.Kill();
            Assert.That(server.WaitForExit(TimeSpan.FromSeconds(20)), Is.True, "the echo server stopped");
            saw = server.StandardOutput.ReadToEnd();
        }
        Assert.That(saw, Does.Not.Contain("peer 127.0.0.1:"), $"no socket of the app left unpatched (exit {exit}): {stdout}{stderr}");
        AssertOneLine(exit, stdout, stderr, 97, "sockshim: not starting the app: " + app + ".runtimeconfig.json", "plain JSON");
        Assert.That(saw, Does.Not.Contain(" peer "), "the app never ran");
    }

    /// <summary>The attacker review: a trimmed app's code is started with the `dotnet` of the
    /// installation its runtime is in. That was DOTNET_ROOT's text plus "dotnet", so root ran
    /// the `dotnet` of any folder DOTNET_ROOT named (sudo -E keeps it) whose `shared` led to the
    /// real runtime. Now it is the installation the runtime was found in by its resolved path:
    /// the folder's own `dotnet` never runs.</summary>
    [Test]
    [CancelAfter(300_000)]
    public void A_trimmed_app_starts_with_the_dotnet_of_the_installation_its_runtime_was_found_in()
    {
        string installed = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        string realRoot = Path.GetFullPath(Path.Combine(installed, "..", "..", ".."));
        string other = Path.Combine(_work.FullName, "other-dotnet-root");
        string ran = Path.Combine(other, "its-dotnet-ran");
        Directory.CreateDirectory(other);
        File.CreateSymbolicLink(Path.Combine(other, "shared"), Path.Combine(realRoot, "shared"));
        File.CreateSymbolicLink(Path.Combine(other, "host"), Path.Combine(realRoot, "host"));
        File.WriteAllText(Path.Combine(other, "dotnet"), $"#!/bin/sh\necho \"$(id -u)\" > {ran}\nexec {Path.Combine(realRoot, "dotnet")} \"$@\"\n");
        File.SetUnixFileMode(Path.Combine(other, "dotnet"), (UnixFileMode)0b111_101_101);
        using (var chown = Process.Start("chown", ["-R", "--no-dereference", "nobody", other])!)
        {
            Assert.That(chown.WaitForExit(60_000), Is.True);
            Assert.That(chown.ExitCode, Is.Zero, "the folder is nobody's");
        }

        var env = new Dictionary<string, string>(SmallHeap) { ["DOTNET_ROOT"] = other };
        var (exit, stdout, stderr) = Programs.Run("SockShim.Interceptor", ["run", "--verbose", "--cache", _cache, "--", Path.Combine(_published, "LegacyApp"), "--start"], env, TimeSpan.FromMinutes(3));
        Assert.That(exit, Is.Zero, stdout + stderr);
        Assert.That(stderr, Does.Contain($"sockshim: command: {Path.Combine(realRoot, "dotnet")} "), stderr);
        Assert.That(File.Exists(ran), Is.False, "the dotnet of the folder DOTNET_ROOT named never ran");
    }

    /// <summary>A name twice in the runtimeconfig or the deps.json was an ArgumentException's
    /// stack trace (System.Text.Json's dictionary); now one line naming the file.</summary>
    [TestCase("LegacyApp.runtimeconfig.json", "\"runtimeOptions\": {", "\"runtimeOptions\": { \"tfm\": \"x\",", 97)]
    [TestCase("LegacyApp.deps.json", "\"libraries\": {", "\"libraries\": {}, \"libraries\": {", 2)]
    [CancelAfter(300_000)]
    public void A_name_given_twice_is_one_line(string file, string find, string replace, int expected)
    {
        string app = Hostile("twice-" + file, folder => Rewrite(Path.Combine(folder, file), text => text.Replace(find, replace)));
        var (exit, stdout, stderr) = Prepare(app);
        AssertOneLine(exit, stdout, stderr, expected, Path.Combine(Path.GetDirectoryName(app)!, file));
    }

    private static void Sparse(string file, long length)
    {
        using var stream = new FileStream(file, FileMode.Open);
        stream.SetLength(length);
    }

    private static void Fifo(string file)
    {
        File.Delete(file);
        Assert.That(Process.Start("mkfifo", [file])!.WaitForExit(10_000), Is.True);
    }

    /// <summary>Files of the app that root's launcher read whole, or waited on: a deps.json or an
    /// assembly of 1.5 GB (sparse: it costs its owner no disk) ran the launcher out of its heap
    /// ("Out of memory.", exit 134); a FIFO in their place held it forever. Each is now one line
    /// naming the file, well within a minute. A deps.json is refused first by the deployment
    /// check (exit 97, as a runtimeconfig is), which cannot tell what it lists unread.</summary>
    [TestCase("LegacyApp.deps.json", "sparse", 97, "more than SockShim reads")]
    [TestCase("LegacyApp.dll", "sparse", 2, "more than SockShim rewrites")]
    [TestCase("LegacyApp.deps.json", "fifo", 97, "is not a regular file")]
    [TestCase("LegacyApp.dll", "fifo", 2, "is not a regular file")]
    [TestCase("LegacyApp.runtimeconfig.json", "fifo", 97, "is not a regular file")]
    [CancelAfter(300_000)]
    public void A_file_of_the_app_read_by_root_is_bounded(string file, string how, int expected, string says)
    {
        string app = Hostile($"{how}-{file}", folder =>
        {
            if (how == "fifo") Fifo(Path.Combine(folder, file));
            else Sparse(Path.Combine(folder, file), 1536L << 20);
        });
        var (exit, stdout, stderr) = Programs.Run("SockShim.Interceptor", ["prepare", "--cache", _cache, app], SmallHeap, TimeSpan.FromSeconds(60));
        AssertOneLine(exit, stdout, stderr, expected, Path.Combine(Path.GetDirectoryName(app)!, file), says);
    }
}
