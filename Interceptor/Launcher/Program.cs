using System.CommandLine;
using SockShim.Interceptor.Cli;
using SockShim.Interceptor.Launch;
using SockShim.Interceptor.Store;
using SockShim.Launcher;
using SockShim.Stack.Interop;

// The fast `sockshim` (Native AOT). `run` is handled here when every runtime's woven copy is in
// the cache: the same checks as the tool's (settings, the app's deployment, the trust of the
// tool directory and the cache, each copy's recorded identity), then the command is exec'd in
// this process. Any other verb, and a `run` that needs weaving, is handed over whole to the
// managed tool beside this file (dotnet SockShim.Interceptor.dll, same arguments), which does
// the heavy work (Mono.Cecil, crossgen2, compare, serve).

// As root, nothing beside this launcher runs or is loaded before all of it is checked.
try { LaunchPlan.CheckToolDirectory(AppContext.BaseDirectory); }
catch (SockShim.Stack.Claims.UntrustedStateException ex)
{
    Console.Error.WriteLine("sockshim: " + ex.Message);
    return 2;
}

// Started by a clone's ./sockshim (the variable says so; which clone is where this launcher
// lives, never a path from the environment): a source changed since the build goes back to
// the script, which rebuilds (once: it says so when it execs this launcher again).
bool fromClone = Environment.GetEnvironmentVariable(LauncherVariables.Clone) is { Length: > 0 };
bool rebuilt = Environment.GetEnvironmentVariable(LauncherVariables.Rebuilt) == "1";
Environment.SetEnvironmentVariable(LauncherVariables.Clone, null);
Environment.SetEnvironmentVariable(LauncherVariables.Rebuilt, null);
string clone = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", ".."));
string script = Path.Combine(clone, "sockshim");
if (fromClone && !rebuilt && File.Exists(script) && CloneSources.ChangedSince(clone, Path.Combine(AppContext.BaseDirectory, ".built")))
{
    if (TrustedPaths.AsRoot && HostPaths.Problem(script, leafIsFile: true) is { } untrusted)
    {
        Console.Error.WriteLine($"sockshim: {untrusted}; as root the clone's script runs only when root owns it and no other account can write it");
        return 2;
    }
    // The bash its first line names, never one from the caller's PATH (root would run it).
    return Hand(["bash", script, .. args], new() { [LauncherVariables.Rebuild] = "1" }, file: "/bin/bash");
}

// Help is the managed tool's: a RootCommand's help option reads System.CommandLine's resources
// through reflection, 0.4 ms of every run here.
// As root, not when OpenSSL's variables are set: checking a file's hash loads OpenSSL into this
// process, which reads them (OPENSSL_CONF names a module it loads), and root's environment may
// carry another account's; the managed tool starts without them (CallerVariables).
bool openSslSet = TrustedPaths.AsRoot && Environment.GetEnvironmentVariables().Keys.Cast<string>().Any(k => k.StartsWith("OPENSSL_", StringComparison.OrdinalIgnoreCase));
if (args.Length > 0 && args[0] == "run" && !openSslSet && !args.TakeWhile(a => a != "--").Any(a => a is "-h" or "--help" or "-?" or "/h" or "/?"))
{
    try
    {
        var root = new Command("sockshim", "SockShim: one IP address per socket for .NET processes");
        root.Subcommands.Add(RunCommand.Create(new StackOptions(), Console.Out, Console.Error, weaver: null));
        return Invocation.Invoke(root, args, Console.Out, Console.Error);
    }
    catch (WeavingNeededException ex)
    {
        // --verbose (before the command's own arguments) says why the tool takes over.
        if (args.TakeWhile(a => a != "--").Contains("--verbose")) Console.Error.WriteLine($"sockshim: {ex.Message}: the managed tool weaves it");
    }
}
// Without the caller's environment but what it needs (given back to the app by the tool); as
// root with a dotnet no other account can change (PATH is the caller's).
string dotnet = "dotnet";
if (TrustedPaths.AsRoot)
{
    Untrusted? problem = new("dotnet", "not found on PATH");
    if (Exec.Resolve("dotnet", Environment.GetEnvironmentVariable("PATH")) is { } found && HostPaths.Canonical(found) is { } muxer)
        (dotnet, problem) = (muxer, HostPaths.Problem(muxer, leafIsFile: true) ?? InstalledRuntimes.InstallationProblem(Path.GetDirectoryName(muxer)!, "host", "shared"));
    if (problem is not null)
    {
        Console.Error.WriteLine($"sockshim: {problem}; as root SockShim starts its managed tool only with a dotnet that root owns and no other account can write, nor any directory above it: put root's .NET installation first on PATH");
        return 2;
    }
}
return Hand(["dotnet", Path.Combine(AppContext.BaseDirectory, "SockShim.Interceptor.dll"), .. args], CallerVariables.HandedOver(), file: dotnet == "dotnet" ? null : dotnet);

static int Hand(string[] command, Dictionary<string, string?> environment, string? file = null)
{
    int failed = Exec.Replace(command, environment, out string why, file);
    Console.Error.WriteLine($"sockshim: {why}");
    return failed;
}

/// <summary>What the clone's script and this launcher tell each other; never passed on.</summary>
internal static class LauncherVariables
{
    public const string Clone = "SOCKSHIM_CLONE", Rebuild = "SOCKSHIM_REBUILD", Rebuilt = "SOCKSHIM_REBUILT";
}
