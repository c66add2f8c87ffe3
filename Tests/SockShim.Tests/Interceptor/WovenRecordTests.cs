using SockShim.Interceptor.Contract;

namespace SockShim.Tests.Interceptor;

/// <summary>
/// The launcher's record of the woven copy it checked (SOCKSHIM_WOVEN_&lt;version&gt; =
/// "INODE:SIZE:CTIMESECONDS.NANOSECONDS:PATH"), which every app reads at its start (or first
/// socket) and compares with one statx, as numbers: the record as the launcher wrote it runs the
/// app; any number one off, or a part that is not a number, refuses it (exit 97) saying which.
/// </summary>
[NonParallelizable]
public class WovenRecordTests
{
    private static Dictionary<string, string> s_env = null!;
    private static string s_record = "";

    [OneTimeSetUp]
    public void Exports()
    {
        var (exit, exports, stderr) = Programs.Run("SockShim.Interceptor", ["env"], timeout: TimeSpan.FromMinutes(5));
        Assert.That(exit, Is.Zero, stderr);
        s_env = exports.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l["export ".Length..].Split('=', 2))
            .ToDictionary(kv => kv[0], kv => kv[1].Trim('\''));
        s_record = HookContract.WovenRecordVariable(Environment.Version.ToString());
        Assert.That(s_env, Does.ContainKey(s_record), exports);
        Assert.That(s_env, Does.ContainKey("DOTNET_STARTUP_HOOKS"), "the record is read before Main: " + exports);
    }

    private static (int Exit, string Err) RunWith(string record)
    {
        var env = new Dictionary<string, string>(s_env) { [s_record] = record };
        // LegacyApp without arguments prints its usage and exits 2: it ran, past the check.
        var (exit, _, err) = Programs.Run("LegacyApp", [], env);
        return (exit, err);
    }

    private static (ulong Inode, ulong Size, ulong Seconds, string Nanoseconds, string Path) Parts()
    {
        var p = s_env[s_record].Split(':', 4);
        var time = p[2].Split('.');
        return (ulong.Parse(p[0]), ulong.Parse(p[1]), ulong.Parse(time[0]), time[1], p[3]);
    }

    [Test, CancelAfter(120_000)]
    public void The_record_as_the_launcher_wrote_it_runs_the_app()
    {
        var (exit, err) = RunWith(s_env[s_record]);
        Assert.That(exit, Is.EqualTo(2), "LegacyApp's usage error: the checked copy ran. " + err);
        Assert.That(Parts().Nanoseconds, Has.Length.EqualTo(9), "nanoseconds written with nine digits");
    }

    [TestCase("inode"), TestCase("size"), TestCase("seconds"), TestCase("nanoseconds"), CancelAfter(120_000)]
    public void A_number_one_off_is_a_changed_file(string part)
    {
        var (inode, size, seconds, nanoseconds, path) = Parts();
        ulong ns = ulong.Parse(nanoseconds);
        string record = part switch
        {
            "inode" => $"{inode + 1}:{size}:{seconds}.{nanoseconds}:{path}",
            "size" => $"{inode}:{size + 1}:{seconds}.{nanoseconds}:{path}",
            "seconds" => $"{inode}:{size}:{seconds - 1}.{nanoseconds}:{path}",
            _ => $"{inode}:{size}:{seconds}.{(ns + 1) % 1_000_000_000:D9}:{path}",
        };
        var (exit, err) = RunWith(record);
        Assert.That(exit, Is.EqualTo(97), err);
        Assert.That(err, Does.Contain($"the woven System.Net.Sockets {path} has changed since the launcher checked it"));
        Assert.That(err, Does.Contain($"{inode}:{size}:{seconds}.{nanoseconds} now"), "what the file is now, as the launcher writes it");
    }

    /// <summary>A record whose numbers are right but whose file cannot be read (gone, or never
    /// there) refuses: "cannot tell" is not "the same file".</summary>
    [Test, CancelAfter(120_000)]
    public void A_record_naming_a_file_that_is_not_there_is_refused()
    {
        var (inode, size, seconds, nanoseconds, _) = Parts();
        string missing = Path.Combine(Path.GetTempPath(), $"sockshim-no-such-{Guid.NewGuid():N}", "System.Net.Sockets.dll");
        var (exit, err) = RunWith($"{inode}:{size}:{seconds}.{nanoseconds}:{missing}");
        Assert.That(exit, Is.EqualTo(97), err);
        Assert.That(err, Does.Contain($"the woven System.Net.Sockets {missing} has changed since the launcher checked it").And.Contain("unreadable now"));
    }

    [TestCase("x{inode}:{size}:{time}:{path}", TestName = "A letter before the inode")]
    [TestCase("{inode}:{size}:{seconds}:{path}", TestName = "A change time without nanoseconds")]
    [TestCase("{inode}:{size}:{time}:", TestName = "No path")]
    [TestCase("{inode}:{size}:{time}", TestName = "No path and no colon")]
    [TestCase("18446744073709551616:{size}:{time}:{path}", TestName = "An inode past 64 bits")]
    [TestCase("-{inode}:{size}:{time}:{path}", TestName = "A negative inode")]
    [TestCase(":{size}:{time}:{path}", TestName = "An empty inode")]
    [TestCase("{inode} :{size}:{time}:{path}", TestName = "A space after the inode")]
    [CancelAfter(120_000)]
    public void A_record_that_is_not_four_numbers_and_a_path_is_refused(string shape)
    {
        var (inode, size, seconds, nanoseconds, path) = Parts();
        string record = shape.Replace("{inode}", inode.ToString()).Replace("{size}", size.ToString())
            .Replace("{time}", $"{seconds}.{nanoseconds}").Replace("{seconds}", seconds.ToString()).Replace("{path}", path);
        var (exit, err) = RunWith(record);
        Assert.That(exit, Is.EqualTo(97), err);
        Assert.That(err, Does.Contain($"the launcher's record of the woven System.Net.Sockets is malformed ('{record}')"));
    }
}
