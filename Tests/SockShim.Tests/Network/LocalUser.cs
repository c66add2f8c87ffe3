using System.Diagnostics;

namespace SockShim.Tests.Network;

/// <summary>
/// An unprivileged account made for one test (no home, no shell, no capability), and the
/// test's programs or a shell command run as it through setpriv.
/// </summary>
internal sealed class LocalUser : IDisposable
{
    public string Name { get; }
    public uint Uid { get; }
    public uint Gid { get; }

    public LocalUser(string prefix)
    {
        TwoHosts.RequireRoot();
        Name = prefix + Guid.NewGuid().ToString("N")[..8];
        TwoHosts.Run("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", Name]);
        Uid = uint.Parse(TwoHosts.Run("id", ["-u", Name]).Trim());
        Gid = uint.Parse(TwoHosts.Run("id", ["-g", Name]).Trim());
    }

    private IEnumerable<string> AsMe(params string[] command) =>
        [$"--reuid={Uid}", $"--regid={Gid}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--", .. command];

    /// <summary>Starts a program of the test output (by assembly name) as this account, with
    /// only <paramref name="env"/> of SockShim's variables.</summary>
    public Process Start(string program, IEnumerable<string> args, IDictionary<string, string>? env = null) =>
        Unprivileged.Start(null, Uid, Gid, program, args, env ?? new Dictionary<string, string>());

    /// <summary>Runs a shell command as this account; its exit code and output.</summary>
    public (int Exit, string Output) Shell(string script)
    {
        var psi = new ProcessStartInfo("setpriv") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in AsMe("sh", "-c", script)) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        string stderr = p.StandardError.ReadToEnd();
        Assert.That(p.WaitForExit(30_000), Is.True, $"`{script}` finished");
        return (p.ExitCode, stdout.Result + stderr);
    }

    public void Dispose()
    {
        TwoHosts.Run("userdel", [Name]);
    }
}
