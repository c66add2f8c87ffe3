using SockShim.Interceptor.Cli;

namespace SockShim.Tests.Interceptor;

public class CliTests
{
    private static (int Exit, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exit = SockShimCli.Run(args, output, error);
        return (exit, output.ToString(), error.ToString());
    }

    [Test]
    public void Config_prints_the_pools_a_configuration_gives()
    {
        string dir = Path.Combine("/dev/shm", "sockshim-test-cli-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var (exit, output, _) = Run("config", "--pool", "127.102.0.0/30", "--strategy", "sequential", "--state-dir", dir);
            Assert.That(exit, Is.Zero);
            // The network and broadcast addresses of the /30 are left out: two are handed out.
            Assert.That(output, Does.Contain("127.102.0.0/30 except 127.102.0.0, 127.102.0.3, 2 addresses").And.Contain("Sequential"));
            Assert.That(Directory.Exists(dir), Is.False, "config creates no state directory");
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Test]
    public void Bad_options_exit_2_with_every_problem_and_no_stack_trace()
    {
        var (exit, _, error) = Run("config", "--pool", "127.1/8", "--allocation", "later");
        Assert.That(exit, Is.EqualTo(2));
        Assert.That(error, Does.Contain("--pool").And.Contain("--allocation").And.Contain("Example of a good value"));
        Assert.That(error, Does.Not.Contain("   at "));
    }

    [Test]
    public void Status_lists_held_addresses_with_their_holder()
    {
        using var t = new TestStack("127.102.1.0/29", name: "st");
        using var socket = new TupleSocket(t.Stack, TupleFamilies.AF_INET_TUPLE, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        var (exit, output, _) = Run("status", "--state-dir", t.StateDirectory);
        Assert.That(exit, Is.Zero, output);
        var row = output.Split('\n').Single(l => l.Contains(socket.Lease!.Address.ToString()));
        Assert.That(row, Does.Contain("st").And.Contain(Environment.ProcessId.ToString()).And.Contain("fd ").And.Contain("loopback").And.Contain("live"));
        Assert.That(output, Does.Contain("1 held"));
        var (_, json, _) = Run("status", "--json", "--state-dir", t.StateDirectory);
        Assert.That(json, Does.Contain($"\"address\": \"{socket.Lease!.Address}\"").And.Contain($"\"pid\": {Environment.ProcessId}"));
    }

    [Test, CancelAfter(60_000)]
    public void A_table_with_a_broken_header_is_named_by_status_and_gc_removes_nothing()
    {
        using var t = new TestStack("127.102.2.0/29", name: "broken");
        using var socket = new TupleSocket(t.Stack, TupleFamilies.AF_INET_TUPLE, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        string table = Directory.GetFiles(t.StateDirectory, "*.leases").Single();
        using (var file = new FileStream(table, FileMode.Open, FileAccess.Write, FileShare.ReadWrite)) file.Write("NOTATABL"u8);

        var (exit, output, _) = Run("status", "--state-dir", t.StateDirectory);
        Assert.That(exit, Is.Zero, "status goes on");
        Assert.That(output, Does.Contain($"problem: lease table {table} is damaged"));
        var (gcExit, _, gcError) = Run("gc", "--state-dir", t.StateDirectory);
        Assert.That(gcExit, Is.EqualTo(2));
        Assert.That(gcError, Does.Contain("is damaged").And.Contain("no address was removed").And.Not.Contain("   at "));
        Assert.That(t.Pool.TryAcquire("after", out _, out var error), Is.False, "the pool fails closed");
        Assert.That(error!.Code, Is.EqualTo(SockShim.Stack.Errors.StackErrorCode.TableDamaged));
        Assert.That(error.Message, Does.Contain("pool 'broken'").And.Contain(table));
    }
}
