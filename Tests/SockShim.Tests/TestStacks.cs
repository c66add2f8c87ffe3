using System.Diagnostics;
using SockShim.Stack;
using SockShim.Stack.Addressing;
using SockShim.Stack.Configuration;
using SockShim.Stack.Errors;
using SockShim.Stack.Policy;
using SockShim.Stack.Pools;

namespace SockShim.Tests;

/// <summary>Stacks with their own state directory, so tests never share lease tables with
/// each other or with a real SockShim user of the host.</summary>
internal sealed class TestStack : IDisposable
{
    public string StateDirectory { get; } = Path.Combine("/dev/shm", "sockshim-test-" + Guid.NewGuid().ToString("N")[..12]);
    public AddressStack Stack { get; }
    public StackSettings Settings { get; }

    public TestStack(string ranges = "127.101.0.0/24", AllocationStrategy strategy = AllocationStrategy.LeastRecentlyReleased,
        AllocationTime allocation = AllocationTime.Eager, string? exclude = null, string name = "test")
    {
        Settings = new StackSettings
        {
            Pools = [new PoolSettings { Name = name, Ranges = ranges.Split(',').ToList(), Exclude = exclude?.Split(',').ToList() ?? new(), Strategy = strategy }],
            Allocation = allocation,
            StateDirectory = StateDirectory,
        };
        Stack = AddressStack.Create(Settings);
    }

    public AddressPool Pool => Stack.Pools[0];

    /// <summary>Environment for a child process that must share this stack's pool.</summary>
    public Dictionary<string, string> Environment => new()
    {
        ["SOCKSHIM_POOL"] = string.Join(",", Settings.Pools[0].Ranges),
        ["SOCKSHIM_EXCLUDE"] = string.Join(",", Settings.Pools[0].Exclude),
        ["SOCKSHIM_POOLNAME"] = Settings.Pools[0].Name,
        ["SOCKSHIM_STRATEGY"] = Settings.Pools[0].Strategy.ToString(),
        ["SOCKSHIM_STATEDIR"] = StateDirectory,
    };

    public int HeldSlots() => Pool.Table.HeldSlots().Count();

    public void Dispose()
    {
        Stack.Dispose();
        try { Directory.Delete(StateDirectory, recursive: true); } catch (DirectoryNotFoundException) { }
    }
}

/// <summary>Where a pool given as text keeps its table in a state directory, as its processes compute it.</summary>
internal static class Tables
{
    public static string PathOf(string stateDirectory, string pool, string name)
    {
        var spec = (SockShim.Stack.Configuration.LocalPoolSpec)SockShim.Stack.Configuration.SettingsLoader.Load(
            new Dictionary<string, string?> { ["Pool"] = pool, ["PoolName"] = name }, new Dictionary<string, string>()).Pools[0];
        return SockShim.Stack.Claims.StateDirectory.TablePath(stateDirectory, spec.Name, spec.Addresses.Fingerprint);
    }
}

/// <summary>Runs the test's helper programs (built beside the tests) as separate processes.</summary>
internal static class Programs
{
    public static string PathOf(string name) => Path.Combine(AppContext.BaseDirectory, name + ".dll");

    /// <summary>Starts a program of the test output, inside network namespace <paramref name="ns"/> when one is named.</summary>
    public static Process Start(string name, IEnumerable<string> args, IDictionary<string, string>? env = null, string? ns = null, bool redirectInput = false)
    {
        var psi = new ProcessStartInfo(ns is null ? "dotnet" : "ip") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = redirectInput, UseShellExecute = false };
        if (ns is not null) foreach (var a in new[] { "netns", "exec", ns, "dotnet" }) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add(PathOf(name));
        foreach (var a in args) psi.ArgumentList.Add(a);
        // A child must not pick up this machine's own SockShim settings.
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("SOCKSHIM_")).ToList()) psi.Environment.Remove(key);
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        return Process.Start(psi)!;
    }

    /// <summary>A line of a program's output within a minute: a hung program fails its test
    /// instead of stalling the run.</summary>
    public static string? Line(Process program)
    {
        var read = program.StandardOutput.ReadLineAsync();
        if (!read.Wait(TimeSpan.FromSeconds(60))) Assert.Fail("the program wrote nothing for a minute");
        return read.Result;
    }

    /// <summary>An EchoServer on 127.0.0.1 at a port the kernel picks; returns it and its endpoint.</summary>
    public static (Process Server, string Endpoint) StartEcho(string stateDirectory, int timeoutSeconds = 600)
    {
        string ready = Path.Combine(stateDirectory, "echo-ready");
        var server = Start("EchoServer", ["--listen", "127.0.0.1:0", "--timeout", timeoutSeconds.ToString(), "--ready-file", ready]);
        var sw = Stopwatch.StartNew();
        // Written whole (a rename), but wait for content too: an empty file is not ready.
        while (!(File.Exists(ready) && new FileInfo(ready).Length > 0) && sw.Elapsed < TimeSpan.FromSeconds(20)) Thread.Sleep(50);
        Assert.That(File.Exists(ready), Is.True, "the echo server started");
        return (server, File.ReadAllText(ready));
    }

    /// <summary>Runs to completion within <paramref name="timeout"/>; returns exit code and output.</summary>
    public static (int Exit, string Out, string Err) Run(string name, IEnumerable<string> args, IDictionary<string, string>? env = null, TimeSpan? timeout = null, string? ns = null) =>
        Complete(Start(name, args, env, ns), $"{name} {string.Join(' ', args)}", timeout ?? TimeSpan.FromSeconds(60));

    /// <summary>The project file of a user's console app (outside the repository, so none of its
    /// build files apply), with extra <paramref name="properties"/> and <paramref name="items"/>.</summary>
    public static string ConsoleProject(string properties = "", string items = "") => $"""
        <Project Sdk="Microsoft.NET.Sdk">
          <PropertyGroup>
            <OutputType>Exe</OutputType>
            <TargetFramework>net10.0</TargetFramework>
            <ImplicitUsings>enable</ImplicitUsings>
            <Nullable>enable</Nullable>
            {properties}
          </PropertyGroup>
          <ItemGroup>{items}</ItemGroup>
        </Project>
        """;

    /// <summary>Runs a program by path (not one of the repository's) to completion within <paramref name="timeout"/>.</summary>
    public static (int Exit, string Out, string Err) RunFile(string file, IEnumerable<string> args, TimeSpan timeout, IDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("SOCKSHIM_")).ToList()) psi.Environment.Remove(key);
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        return Complete(Process.Start(psi)!, $"{file} {string.Join(' ', args)}", timeout);
    }

    /// <summary>Waits for a started program with redirected output, killing it past <paramref name="timeout"/>.</summary>
    public static (int Exit, string Out, string Err) Complete(Process started, string what, TimeSpan timeout)
    {
        using var p = started;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{what} did not finish in time; output so far: {stdout.Result}");
        }
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr.Result);
    }
}

/// <summary>A static pool over a given table and provisioner, as the stack would build it.</summary>
internal static class TestPools
{
    public static AddressPool Static(PoolDefinition definition, SockShim.Stack.Provisioning.IAddressProvisioner provisioner, SockShim.Stack.Claims.LeaseTable table, int prefetch = 0)
    {
        var host = new SockShim.Stack.Sources.HostAddresses(definition.Name, definition, provisioner, table, SockShim.Stack.Claims.ProcessIdentity.Current);
        return new AddressPool(definition, provisioner, new SockShim.Stack.Sources.StaticSource(host, prefetch), null, new PoolDescription(), TimeProvider.System);
    }
}

/// <summary>
/// A fixture whose tests run apps against an echo server in another process, with a loopback
/// pool of the fixture's own: what the server reports is where each socket came from.
/// </summary>
public abstract class EchoServerFixture(string range, string name)
{
    private protected TestStack _pool = null!;
    private protected Process _server = null!;
    private protected string _serverEndpoint = "";

    [OneTimeSetUp]
    public void StartPoolAndEchoServer()
    {
        _pool = new TestStack(range, name: name);
        (_server, _serverEndpoint) = Programs.StartEcho(_pool.StateDirectory);
    }

    [OneTimeTearDown]
    public void StopPoolAndEchoServer()
    {
        _server?.Kill();
        _server?.Dispose();
        _pool?.Dispose();
    }
}
