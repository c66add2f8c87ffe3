namespace SockShim.Tests.Stack;

/// <summary>Quiet by default; SOCKSHIM_LOG=debug tells every address taken and given back, on stderr.</summary>
public class LoggingTests
{
    [Test]
    public void A_process_is_quiet_unless_SOCKSHIM_LOG_asks_and_then_logs_to_stderr()
    {
        using var t = new TestStack("127.101.70.0/30", name: "logged");
        var quiet = Programs.Run("SockShim.TestAgent", ["leak", "2"], t.Environment);
        Assert.That(quiet.Exit, Is.Zero);
        Assert.That(quiet.Err, Is.Empty);

        var env = t.Environment;
        env["SOCKSHIM_LOG"] = "debug";
        var loud = Programs.Run("SockShim.TestAgent", ["leak", "2"], env);
        Assert.That(loud.Exit, Is.Zero);
        Assert.That(loud.Err, Does.Contain("pool logged: acquired 127.101.70."));
        Assert.That(loud.Out, Does.Not.Contain("acquired"), "the app's own output stays clean");
    }
}
