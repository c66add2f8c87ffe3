namespace SockShim.Tests.Interceptor;

/// <summary>
/// Examples/LegacyApp published the ways a user would, from a copy of its source in the test's
/// own private (0700) temporary directory, so its obj/bin never meet the repository's builds;
/// no Directory.Build.* or nuget.config above it (in a directory other accounts can write) is
/// imported: only the config written here is used.
/// </summary>
internal sealed class LegacyAppPublish
{
    private readonly string _work, _project, _config;

    public LegacyAppPublish(string work)
    {
        _work = work;
        _project = Path.Combine(work, "src");
        Directory.CreateDirectory(_project);
        File.Copy(Path.Combine(RepoPaths.Root, "Examples", "LegacyApp", "Program.cs"), Path.Combine(_project, "Program.cs"));
        File.WriteAllText(Path.Combine(_project, "LegacyApp.csproj"), Programs.ConsoleProject(properties: "<InvariantGlobalization>true</InvariantGlobalization>"));
        _config = Path.Combine(work, "nuget.config");
        File.WriteAllText(_config, """
            <configuration><packageSources><clear /><add key="nuget.org" value="https://api.nuget.org/v3/index.json" /></packageSources></configuration>
            """);
    }

    /// <summary>Publishes for linux-x64 with <paramref name="options"/> into a folder named
    /// <paramref name="name"/>; that folder.</summary>
    public string To(string name, params string[] options)
    {
        string output = Path.Combine(_work, name);
        var (exit, stdout, stderr) = Programs.RunFile("dotnet", ["publish", _project, "-c", "Release", "-r", "linux-x64", "-nologo", "-v", "q",
            "--configfile", _config, "-o", output, "-p:BaseIntermediateOutputPath=" + Path.Combine(_work, "obj-" + name) + "/",
            "-p:ImportDirectoryBuildProps=false", "-p:ImportDirectoryBuildTargets=false", "-p:ImportDirectoryPackagesProps=false", .. options], TimeSpan.FromMinutes(4));
        Assert.That(exit, Is.Zero, $"publishing LegacyApp {name} ({string.Join(' ', options)}): {stdout}{stderr}");
        return output;
    }
}
