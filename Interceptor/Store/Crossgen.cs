using System.Diagnostics;

namespace SockShim.Interceptor.Store;

/// <summary>Recompiles a woven System.Net.Sockets.dll to ReadyToRun with the crossgen2 of the
/// matching runtime version (package Microsoft.NETCore.App.Crossgen2.linux-x64), so an app
/// under the launcher does not JIT the ~350 methods weaving took the native code from.</summary>
public static class Crossgen
{
    public const string PackageId = "microsoft.netcore.app.crossgen2.linux-x64";

    public static string PackagesFolder =>
        Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p ? p
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    /// <summary>The crossgen2 executable for <paramref name="runtimeVersion"/>, downloading the
    /// package through NuGet when it is not there yet; null with <paramref name="why"/> when it cannot be had.</summary>
    public static string? Find(string runtimeVersion, out string why)
    {
        string tool = Path.Combine(PackagesFolder, PackageId, runtimeVersion, "tools", "crossgen2");
        if (File.Exists(tool)) { why = ""; return tool; }

        string temp = Path.Combine(Path.GetTempPath(), "sockshim-crossgen-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(temp);
        try
        {
            File.WriteAllText(Path.Combine(temp, "download.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup><TargetFramework>net{runtimeVersion.Split('.')[0]}.0</TargetFramework></PropertyGroup>
                  <ItemGroup><PackageDownload Include="Microsoft.NETCore.App.Crossgen2.linux-x64" Version="[{runtimeVersion}]" /></ItemGroup>
                </Project>
                """);
            var (exit, output) = Run("dotnet", ["restore", "--nologo", "-v", "q"], temp, TimeSpan.FromMinutes(3));
            if (exit != 0 || !File.Exists(tool))
            {
                why = $"the package Microsoft.NETCore.App.Crossgen2.linux-x64 {runtimeVersion} could not be restored: {output.Trim()}";
                return null;
            }
            why = "";
            return tool;
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or IOException)
        {
            why = $"dotnet restore could not run: {ex.Message}";
            return null;
        }
        finally { Directory.Delete(temp, recursive: true); }
    }

    /// <summary>Compiles <paramref name="input"/> against the runtime's other assemblies.</summary>
    public static bool Compile(string crossgen, string input, string output, InstalledRuntime runtime, out string why)
    {
        var args = new List<string> { input, "-o", output, "--targetos:linux", "--targetarch:x64", "-O" };
        foreach (var reference in Directory.GetFiles(runtime.Directory, "*.dll"))
            if (!Path.GetFileName(reference).Equals("System.Net.Sockets.dll", StringComparison.OrdinalIgnoreCase))
                args.Add("-r:" + reference);
        var (exit, text) = Run(crossgen, args, null, TimeSpan.FromMinutes(5));
        why = exit == 0 && File.Exists(output) ? "" : $"crossgen2 exited {exit}: {text.Trim()}";
        return why == "";
    }

    private static (int Exit, string Output) Run(string file, IEnumerable<string> args, string? cwd, TimeSpan timeout)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (cwd is not null) psi.WorkingDirectory = cwd;
        foreach (var a in args) psi.ArgumentList.Add(a);
        // The SockShim variables must not reach the tools SockShim runs itself.
        foreach (var k in psi.Environment.Keys.Where(k => k.StartsWith("SOCKSHIM_") || k is "DOTNET_STARTUP_HOOKS" or "DOTNET_ADDITIONAL_DEPS" or "DOTNET_SHARED_STORE").ToList())
            psi.Environment.Remove(k);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            return (-1, $"timed out after {timeout.TotalSeconds} s");
        }
        p.WaitForExit();
        return (p.ExitCode, stdout.Result + stderr.Result);
    }
}
