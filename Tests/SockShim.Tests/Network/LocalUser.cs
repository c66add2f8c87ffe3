using System.Diagnostics;

namespace SockShim.Tests.Network;

/// <summary>
/// An unprivileged account made for one test fixture (no home, no shell, no capability), and
/// the test's programs run as it through setpriv. The programs are run from a copy of the test
/// output that the account can read, since the checkout may sit under a directory it cannot.
/// </summary>
internal sealed class LocalUser : IDisposable
{
    public string Name { get; }
    public uint Uid { get; }
    public uint Gid { get; }
    private string? _programs;

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
    public Process Start(string program, IEnumerable<string> args, IDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo("setpriv") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in AsMe("dotnet", Path.Combine(Programs(), program + ".dll"))) psi.ArgumentList.Add(a);
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("SOCKSHIM_") || k.StartsWith("DOTNET_")).ToList()) psi.Environment.Remove(key);
        psi.Environment["HOME"] = "/nonexistent";
        psi.Environment["DOTNET_CLI_HOME"] = "/tmp";
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        return Process.Start(psi)!;
    }

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

    // A root-owned copy, readable by everyone, in a directory of a random name made for it.
    private string Programs()
    {
        if (_programs is not null) return _programs;
        var dir = Directory.CreateTempSubdirectory("sockshim-test-programs-");
        string from = AppContext.BaseDirectory;
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            string to = Path.Combine(dir.FullName, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(file, to);
        }
        File.SetUnixFileMode(dir.FullName, (UnixFileMode)0b111_101_101);
        return _programs = dir.FullName;
    }

    public void Dispose()
    {
        TwoHosts.Run("userdel", [Name]);
        if (_programs is not null) Directory.Delete(_programs, recursive: true);
    }
}
