using System.Diagnostics;
using System.Text.RegularExpressions;

namespace SockShim.Tests.Examples;

/// <summary>The README's promises, run exactly as written.</summary>
public class ReadmeTests
{
    private static string Readme => File.ReadAllText(Path.Combine(RepoPaths.Root, "README.md"));

    /// <summary>The commands in the README's "Two commands" section, in order.</summary>
    private static List<string> Commands()
    {
        var section = Regex.Match(Readme, @"## Two commands\s*(.*?)(\n## |\z)", RegexOptions.Singleline).Groups[1].Value;
        return Regex.Matches(section, @"```(?:sh|bash)\n(.*?)\n```", RegexOptions.Singleline).Select(m => m.Groups[1].Value.Trim()).ToList();
    }

    [Test]
    public void The_readme_has_exactly_two_commands_and_the_second_is_what_ci_runs()
    {
        var commands = Commands();
        Assert.That(commands, Has.Count.EqualTo(2));
        Assert.That(File.ReadAllText(Path.Combine(RepoPaths.Root, ".ci", "run")), Does.Contain(commands[1]));
    }

    [Test]
    public void The_first_command_shows_distinct_source_addresses_for_every_connection()
    {
        string command = Commands()[0];
        var psi = new ProcessStartInfo("bash", ["-c", command]) { WorkingDirectory = RepoPaths.Root, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("SOCKSHIM_")).ToList()) psi.Environment.Remove(key);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.That(p.WaitForExit(TimeSpan.FromMinutes(4)), Is.True, "the demo finished");
        Assert.That(p.ExitCode, Is.Zero, stdout.Result + stderr.Result);
        var m = Regex.Match(stdout.Result, @"distinct source addresses: (\d+) in (\d+) served");
        Assert.That(m.Success, Is.True, stdout.Result);
        int distinct = int.Parse(m.Groups[1].Value), served = int.Parse(m.Groups[2].Value);
        // Every connection the README promises: N tuple sockets, and LegacyApp's 11 APIs.
        int tuples = int.Parse(Regex.Match(command, @"demo\.sh (\d+)").Groups[1].Value);
        Assert.That(Readme, Does.Contain($"distinct source addresses: {tuples + 11} in {tuples + 11} served"), "the README says what the demo shows");
        Assert.That(served, Is.EqualTo(tuples + 11), "every connection and datagram of both clients was served");
        Assert.That(distinct, Is.EqualTo(served), "one source address per connection");
        Assert.That(stdout.Result, Does.Match(@"peer 127\.100\.\d+\.\d+:\d+"), "from the embedded loopback pool");
    }
}
