using System.Text.RegularExpressions;

namespace SockShim.Tests.Examples;

/// <summary>One C-style source file, built against Tmds.LibC and against SockShim.</summary>
public class CStyleExampleTests
{
    private static string Masked(string output) => Regex.Replace(output, @":\d+", ":PORT");

    private const string StateDirectory = "/dev/shm/sockshim-test-cstyle";

    [TearDown]
    public void RemoveTables()
    {
        if (Directory.Exists(StateDirectory)) Directory.Delete(StateDirectory, recursive: true);
    }

    [Test]
    public void With_the_default_tuple_both_builds_give_identical_results()
    {
        var env = new Dictionary<string, string> { ["SOCKSHIM_POOL"] = "127.105.0.0/24", ["SOCKSHIM_STATEDIR"] = StateDirectory };
        var libc = Programs.Run("CStyleLibC", ["4"], env);
        var shim = Programs.Run("CStyleShim", ["4"], env);
        Assert.That(libc.Exit, Is.Zero, libc.Out);
        Assert.That(shim.Exit, Is.Zero, shim.Out);
        Assert.That(Masked(shim.Out), Is.EqualTo(Masked(libc.Out)));
        Assert.That(Regex.Matches(libc.Out, "getsockname 127.0.0.1:PORT server saw 127.0.0.1".Replace("PORT", @"\d+")), Has.Count.EqualTo(4));
    }

    [Test]
    public void With_the_tuple_family_each_socket_gets_its_own_address_and_libc_refuses_it()
    {
        var env = new Dictionary<string, string> { ["SOCKSHIM_POOL"] = "127.105.1.0/24", ["SOCKSHIM_STATEDIR"] = StateDirectory };
        var shim = Programs.Run("CStyleShim", ["6", "--tuple"], env);
        Assert.That(shim.Exit, Is.Zero, shim.Out);
        var pairs = Regex.Matches(shim.Out, @"getsockname (\S+) server saw (\S+)").Select(m => (m.Groups[1].Value, m.Groups[2].Value)).ToList();
        Assert.That(pairs, Has.Count.EqualTo(6));
        Assert.That(pairs.All(p => p.Item1 == p.Item2), Is.True, shim.Out);
        Assert.That(pairs.Select(p => p.Item1.Split(':')[0]).Distinct().Count(), Is.EqualTo(6));
        Assert.That(pairs.All(p => p.Item1.StartsWith("127.105.1.")), Is.True, shim.Out);

        var libc = Programs.Run("CStyleLibC", ["1", "--tuple"], env);
        Assert.That(libc.Exit, Is.EqualTo(1));
        Assert.That(libc.Out, Does.Contain("socket failed, errno 97"), "EAFNOSUPPORT from the real libc");
    }
}
