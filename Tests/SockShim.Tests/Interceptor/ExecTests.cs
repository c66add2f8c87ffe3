using SockShim.Interceptor.Launch;

namespace SockShim.Tests.Interceptor;

/// <summary>How `sockshim run` finds the command it replaces itself with: like a shell, except
/// that root never takes a program from a relative PATH entry (the current directory).</summary>
[NonParallelizable]
public class ExecTests
{
    [Test]
    [CancelAfter(30_000)]
    public void As_root_a_relative_path_entry_is_never_searched()
    {
        if (Tmds.Linux.LibC.geteuid() != 0) Assert.Fail("missing precondition: needs root (CI runs the suite as root)");
        var dir = Directory.CreateTempSubdirectory("sockshim-exec-");
        try
        {
            string program = Path.Combine(dir.FullName, "sockshim-test-command");
            File.WriteAllText(program, "#!/bin/sh\nexit 0\n");
            File.SetUnixFileMode(program, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            string relative = Path.GetRelativePath(Environment.CurrentDirectory, dir.FullName);
            Assert.That(relative.StartsWith('/'), Is.False, "the entry is relative");
            Assert.That(Exec.Resolve("sockshim-test-command", $"{relative}:/usr/bin"), Is.Null, "a relative entry is skipped as root");
            Assert.That(Exec.Resolve("sockshim-test-command", $"/usr/bin:{dir.FullName}"), Is.EqualTo(program), "an absolute entry is searched in order");
            Assert.That(Exec.Resolve("./x/y", null), Is.EqualTo("./x/y"), "a name with a slash is a path");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
