using SockShim.Stack.Claims;

namespace SockShim.Tests.Stack;

/// <summary>
/// Processes that open one pool at the same moment race on its files: each reads the pool's
/// description and, when there is none yet or it differs, writes one under a random name and
/// renames it into place. A file whose name went away between open(2) and the check of its links
/// has 0 links: that is the race, not another account's file, and the opener carries on as if it
/// had found none (CI saw a holder die of it, four holders starting on a new pool at once in
/// GcRaceTests).
/// </summary>
[CancelAfter(60_000)]
public class StateFileRaceTests
{
    private string _dir = "";

    [SetUp]
    public void MakeDirectory() => _dir = Directory.CreateTempSubdirectory("sockshim-race-").FullName;

    [TearDown]
    public void RemoveDirectory() => Directory.Delete(_dir, recursive: true);

    [Test]
    public void Descriptions_replaced_and_removed_under_concurrent_writers_never_fail_them()
    {
        string table = Path.Combine(_dir, "race.0123456789abcdef.net1.v5.leases");
        string description = table + ".pool.json";
        var failures = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(3);
        var cancelled = TestContext.CurrentContext.CancellationToken;
        int zeroLinks = 0;
        // Two writers with different texts replace each other's file; a third removes it (the
        // name gone outright, as after `rm`); a fourth opens it as OpenExisting does and counts
        // the times it held a file with no name left, so the run shows the window was met.
        // Bounded in time and in count.
        var threads = Enumerable.Range(0, 4).Select(t => new Thread(() =>
        {
            for (int i = 0; i < 200_000 && DateTime.UtcNow < until && !cancelled.IsCancellationRequested && failures.IsEmpty; i++)
            {
                try
                {
                    if (t == 2) File.Delete(description);
                    else if (t == 3 && LinksOfOpened(description) == 0) Interlocked.Increment(ref zeroLinks);
                    else if (t < 2) StateDirectory.WriteDescription(table, $"{{\"writer\":{t},\"round\":{i % 2}}}");
                }
                catch (Exception ex) { failures.Enqueue(ex); }
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        Assert.That(threads.All(t => t.Join(TimeSpan.FromSeconds(30))), Is.True, "the threads ended");
        Assert.That(failures, Is.Empty, () => string.Join("\n", failures.Take(3)));
        Assert.That(zeroLinks, Is.GreaterThan(0), "the race was met: an opened description had no name left");
    }

    // The links of the file open(2) found at path, counted after the open: -1 when there was none.
    private static unsafe long LinksOfOpened(string path)
    {
        int fd;
        fixed (byte* name = System.Text.Encoding.UTF8.GetBytes(path + "\0")) fd = Tmds.Linux.LibC.open(name, Tmds.Linux.LibC.O_RDONLY | Tmds.Linux.LibC.O_CLOEXEC);
        if (fd < 0) return -1;
        try
        {
            Tmds.Linux.stat st;
            return Tmds.Linux.LibC.fstat(fd, &st) == 0 ? (long)(ulong)st.st_nlink : -1;
        }
        finally { Tmds.Linux.LibC.close(fd); }
    }

    [Test]
    public void A_state_file_with_extra_names_or_of_another_type_is_still_refused()
    {
        // Only a file with no name left is new "not there": one with more names, or of another
        // type, is refused as before, by every opener.
        string table = Path.Combine(_dir, "race.0123456789abcdef.net1.v5.leases");
        string description = table + ".pool.json";
        File.WriteAllText(description, "{}");
        foreach (var extra in new[] { "a", "b" }) Assert.That(Run("ln", description, description + "." + extra), Is.Zero);
        var refused = Assert.Throws<UntrustedStateException>(() => StateDirectory.WriteDescription(table, "{\"other\":1}"));
        Assert.That(refused!.Message, Does.Contain("3 links"));
        Assert.That(File.ReadAllText(description), Is.EqualTo("{}"), "not replaced");

        using (LeaseTable.Open(table, 4)) { }
        foreach (var extra in new[] { "a", "b" }) Assert.That(Run("ln", table, table + "." + extra), Is.Zero);
        Assert.That(Assert.Throws<UntrustedStateException>(() => LeaseTable.Open(table, 4).Dispose())!.Message, Does.Contain("3 links"));
        Assert.That(Assert.Throws<UntrustedStateException>(() => LeaseTable.OpenExisting(table, 4)?.Dispose())!.Message, Does.Contain("3 links"));

        File.Delete(description);
        Assert.That(Run("mkfifo", description), Is.Zero);
        Assert.Throws<UntrustedStateException>(() => StateDirectory.WriteDescription(table, "{}"));
    }

    private static int Run(string tool, params string[] args)
    {
        using var p = System.Diagnostics.Process.Start(tool, args)!;
        return p.WaitForExit(10_000) ? p.ExitCode : -1;
    }
}
