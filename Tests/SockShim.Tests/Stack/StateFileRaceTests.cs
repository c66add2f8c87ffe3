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
        int written = 0;
        // Two writers with different texts replace each other's file; a third removes it (the
        // name gone outright, as after `rm`). Bounded in time and in count.
        var threads = Enumerable.Range(0, 3).Select(t => new Thread(() =>
        {
            for (int i = 0; i < 200_000 && DateTime.UtcNow < until && failures.IsEmpty; i++)
            {
                try
                {
                    if (t == 2) File.Delete(description);
                    else StateDirectory.WriteDescription(table, $"{{\"writer\":{t},\"round\":{i % 2}}}");
                    Interlocked.Increment(ref written);
                }
                catch (Exception ex) { failures.Enqueue(ex); }
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.That(failures, Is.Empty, () => string.Join("\n", failures.Take(3)));
        Assert.That(written, Is.GreaterThan(1_000), "the writers raced long enough to meet the window");
    }
}
