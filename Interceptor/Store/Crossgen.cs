using System.Diagnostics;
using System.Xml.Linq;
using SockShim.Stack.Interop;

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
    /// package through NuGet when it is not there yet; null with <paramref name="why"/> when it
    /// cannot be had. The restore runs in a new 0700 directory under
    /// <paramref name="privateParent"/> (the cache's own), never in a shared temporary directory:
    /// MSBuild and NuGet read Directory.Build.*, NuGet.Config and global.json from every directory
    /// above a project. There it has its own global.json and NuGet.Config (the account's sources,
    /// nothing read from the directories above), and Directory.Build/Packages imports and
    /// Directory.Build.rsp are switched off on the command line.</summary>
    public static string? Find(string runtimeVersion, string privateParent, out string why)
    {
        string tool = Path.Combine(PackagesFolder, PackageId, runtimeVersion, "tools", "crossgen2");
        if (File.Exists(tool)) return Trusted(tool, out why);
        if (UntrustedAsRoot(PackagesFolder) is { } packages)
        {
            why = $"the NuGet packages folder {PackagesFolder} is not root's alone ({packages}); as root SockShim runs no crossgen2 another account could change: set NUGET_PACKAGES to a folder root owns";
            return null;
        }
        if (NuGetConfig(out why) is not { } config) return null;

        string dir;
        try { dir = TrustedPaths.NewPrivateDirectory(privateParent, "restore-"); }
        catch (IOException ex)
        {
            why = $"no private directory for dotnet restore: {ex.Message}";
            return null;
        }
        try
        {
            TrustedPaths.WriteNew(Path.Combine(dir, "download.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup><TargetFramework>net{runtimeVersion.Split('.')[0]}.0</TargetFramework></PropertyGroup>
                  <ItemGroup><PackageDownload Include="Microsoft.NETCore.App.Crossgen2.linux-x64" Version="[{runtimeVersion}]" /></ItemGroup>
                </Project>
                """, 0b110_000_000);
            TrustedPaths.WriteNew(Path.Combine(dir, "NuGet.Config"), config, 0b110_000_000);
            // Stops the SDK's search for a global.json above (it can choose the SDK and MSBuild SDKs).
            TrustedPaths.WriteNew(Path.Combine(dir, "global.json"), "{}\n", 0b110_000_000);
            // The dotnet this tool runs on, not one PATH finds; global properties set before
            // Microsoft.Common.props decides on these imports (the per-user ones included).
            string muxer = Path.GetFileName(Environment.ProcessPath) == "dotnet" ? Environment.ProcessPath! : "dotnet";
            // As root the restore runs the SDK, MSBuild and the workload manifests' targets of that
            // installation: all of it must be root's alone (and it must be the one this tool runs on).
            if (TrustedPaths.AsRoot && (muxer == "dotnet" ? new Untrusted("dotnet", "is not the muxer this tool runs on") : InstalledRuntimes.InstallationProblem(Path.GetDirectoryName(muxer)!, "")) is { } installation)
            {
                why = $"{installation}; as root SockShim restores crossgen2 only with a .NET installation root owns alone";
                return null;
            }
            var (exit, output) = Run(muxer, ["restore", "download.csproj", "--nologo", "-v", "q",
                "--configfile", Path.Combine(dir, "NuGet.Config"),
                "-p:ImportDirectoryBuildProps=false", "-p:ImportDirectoryBuildTargets=false", "-p:ImportDirectoryPackagesProps=false",
                "-p:ImportUserLocationsByWildcardBeforeMicrosoftCommonProps=false", "-p:ImportUserLocationsByWildcardAfterMicrosoftCommonProps=false",
                "-p:ImportUserLocationsByWildcardBeforeMicrosoftCommonTargets=false", "-p:ImportUserLocationsByWildcardAfterMicrosoftCommonTargets=false",
                "-noAutoResponse"], dir, TimeSpan.FromMinutes(3));
            if (exit != 0 || !File.Exists(tool))
            {
                why = $"the package Microsoft.NETCore.App.Crossgen2.linux-x64 {runtimeVersion} could not be restored: {output.Trim()}";
                return null;
            }
            return Trusted(tool, out why);
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or IOException)
        {
            why = $"dotnet restore could not run: {ex.Message}";
            return null;
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    /// <summary>The tool, unless root would run a file another account can change.</summary>
    /// <remarks>By the path the kernel resolves now, checked and then run by that path: a link on
    /// the way (NUGET_PACKAGES may lead through one another account owns) cannot be re-pointed
    /// between the check and the run.</remarks>
    private static string? Trusted(string tool, out string why)
    {
        string resolved = HostPaths.Canonical(tool) ?? tool;
        why = UntrustedAsRoot(resolved) is { } problem
            ? $"{tool} is not root's alone ({problem}); as root SockShim runs no crossgen2 another account could change: set NUGET_PACKAGES to a folder root owns"
            : "";
        return why == "" ? resolved : null;
    }

    /// <summary>As root: what is wrong with <paramref name="path"/> (or the deepest part of it
    /// that exists) and the directories above it; null when fine, or when not root.</summary>
    private static Untrusted? UntrustedAsRoot(string path)
    {
        if (!TrustedPaths.AsRoot) return null;
        string existing = Path.GetFullPath(path);
        string? canonical;
        while ((canonical = HostPaths.Canonical(existing)) is null)
            if ((existing = Path.GetDirectoryName(existing)!) is null) return null;
        return HostPaths.Problem(canonical, leafIsFile: File.Exists(canonical));
    }

    /// <summary>The NuGet configuration of the restore: the package sources this account has
    /// configured (its user-level NuGet.Config, or nuget.org when it has none), with their
    /// credentials, source mapping and proxy settings; null with <paramref name="why"/> when
    /// root's configuration is another account's to change.</summary>
    private static string? NuGetConfig(out string why)
    {
        why = "";
        string user = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "NuGet", "NuGet.Config");
        var sources = new List<(string Key, string Value)>();
        var copied = new List<XElement>();
        if (!File.Exists(user)) sources.Add(("nuget.org", "https://api.nuget.org/v3/index.json"));
        else
        {
            if (UntrustedAsRoot(user) is { } problem)
            {
                why = $"the NuGet configuration {user} is not root's alone ({problem}); as root SockShim restores only with a configuration root owns";
                return null;
            }
            XDocument document;
            try { document = XDocument.Load(user); }
            catch (System.Xml.XmlException ex)
            {
                why = $"the NuGet configuration {user} cannot be read: {ex.Message}";
                return null;
            }
            var root = document.Root;
            var disabled = root?.Element("disabledPackageSources")?.Elements("add")
                .Where(e => string.Equals((string?)e.Attribute("value"), "true", StringComparison.OrdinalIgnoreCase))
                .Select(e => (string?)e.Attribute("key")).ToHashSet() ?? [];
            foreach (var element in root?.Element("packageSources")?.Elements() ?? [])
            {
                if (element.Name == "clear") sources.Clear();
                else if (element.Name == "add" && (string?)element.Attribute("key") is { } key && (string?)element.Attribute("value") is { } value && !disabled.Contains(key))
                    sources.Add((key, value));
            }
            foreach (var name in new[] { "packageSourceCredentials", "packageSourceMapping", "config" })
                if (root?.Element(name) is { } element)
                    copied.Add(new XElement(element.Name, element.Attributes(), element.Elements().Where(e => (string?)e.Attribute("key") != "globalPackagesFolder")));
        }
        return new XDocument(new XElement("configuration",
            new XElement("packageSources", new XElement("clear"), sources.Select(s => new XElement("add", new XAttribute("key", s.Key), new XAttribute("value", s.Value)))),
            copied)).ToString();
    }

    /// <summary>Compiles <paramref name="input"/> against the runtime's other assemblies.</summary>
    public static bool Compile(string crossgen, string input, string output, InstalledRuntime runtime, out string why)
    {
        var args = new List<string> { input, "-o", output, "--targetos:linux", "--targetarch:x64", "-O" };
        foreach (var reference in Directory.GetFiles(runtime.Directory, "*.dll"))
            if (!Path.GetFileName(reference).Equals("System.Net.Sockets.dll", StringComparison.OrdinalIgnoreCase))
                args.Add("-r:" + reference);
        int exit;
        string text;
        try { (exit, text) = Run(crossgen, args, null, TimeSpan.FromMinutes(5)); }
        catch (System.ComponentModel.Win32Exception ex)
        {
            // One this account may not execute: NuGet extracts it with mode 0744, so a packages
            // folder restored by another account (NUGET_PACKAGES) gives the right to its owner alone.
            why = $"crossgen2 {crossgen} could not be started ({ex.Message})";
            return false;
        }
        why = exit == 0 && File.Exists(output) ? "" : $"crossgen2 exited {exit}: {text.Trim()}";
        return why == "";
    }

    private static readonly string[] Proxies = ["http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "all_proxy"];

    private static (int Exit, string Output) Run(string file, IEnumerable<string> args, string? cwd, TimeSpan timeout)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (cwd is not null) psi.WorkingDirectory = cwd;
        foreach (var a in args) psi.ArgumentList.Add(a);
        // The SockShim variables must not reach the tools SockShim runs itself, nor the caller's
        // startup hooks, profilers and runtime knobs (crossgen2 and MSBuild are .NET programs).
        foreach (var k in psi.Environment.Keys.Where(k => k.StartsWith("SOCKSHIM_") || Launch.CallerVariables.RuntimeKnob(k)).ToList())
            psi.Environment.Remove(k);
        if (TrustedPaths.AsRoot)
        {
            // As root, nothing else of the caller's either: MSBuild takes every variable as a
            // property (CustomBeforeMicrosoftCommonProps names a file it imports, XDG_DATA_HOME
            // where it looks for per-user imports), and root's environment may carry another
            // account's (sudo -E). The packages folder is the one checked above.
            string path = psi.Environment.TryGetValue("PATH", out var given) && given is not null ? given : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
            psi.Environment.Clear();
            psi.Environment["PATH"] = path;
            psi.Environment["HOME"] = HostPaths.AccountField(0, 5) ?? "/root"; // root's home by the account database, not HOME
            psi.Environment["NUGET_PACKAGES"] = HostPaths.Canonical(PackagesFolder) ?? PackagesFolder;
            psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
            psi.Environment["DOTNET_NOLOGO"] = "1";
            // A host that reaches NuGet only through a proxy: a proxy sees which packages are
            // fetched but cannot change them (TLS, checked against the system's own CAs).
            foreach (var name in Proxies)
                if (Environment.GetEnvironmentVariable(name) is { Length: > 0 } proxy) psi.Environment[name] = proxy;
        }
        // Nothing from or into opt/core* under the working directory (Launch.CallerVariables.Servicing).
        foreach (var (name, value) in Launch.CallerVariables.HostDirectories(AppContext.BaseDirectory)) psi.Environment[name] = value;
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
