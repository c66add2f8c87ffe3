using SockShim.Interceptor.Launch;

namespace SockShim.Tests.Interceptor;

/// <summary>
/// What SockShim's managed tool starts with, and what it gives back to the app: only what starting
/// needs and SockShim reads as data stays; every other variable of the caller's is handed over
/// under SOCKSHIM_CALLER_ and put back by the tool; as root the runtime's diagnostics are off in
/// the tool alone. Checked on the changes the launcher applies (in this process's environment,
/// set and restored around each test).
/// </summary>
[NonParallelizable]
public class CallerVariablesTests
{
    private static readonly Dictionary<string, string> Caller = new()
    {
        ["OPENSSL_CONF"] = "/planted/openssl.cnf",
        ["CORECLR_PROFILER_PATH"] = "/planted/profiler.so",
        ["DOTNET_STARTUP_HOOKS"] = "/planted/Hook.dll",
        ["COREHOST_TRACEFILE"] = "/planted/trace",
        ["TMPDIR"] = "/planted/tmp",
        ["LD_LIBRARY_PATH"] = "/planted/lib",
        ["DOTNET_ROOT"] = "/usr/share/dotnet",
        ["SOCKSHIM_POOL"] = "127.100.0.0/24",
        ["SOCKSHIM_CALLER_LD_PRELOAD"] = "/planted/preload.so",
    };

    private readonly Dictionary<string, string?> _before = new();

    [SetUp]
    public void Set()
    {
        foreach (var (k, v) in Caller)
        {
            _before[k] = Environment.GetEnvironmentVariable(k);
            Environment.SetEnvironmentVariable(k, v);
        }
        foreach (var k in new[] { "DOTNET_EnableDiagnostics", "LD_PRELOAD" }) _before[k] = Environment.GetEnvironmentVariable(k);
    }

    [TearDown]
    public void Restore()
    {
        foreach (var (k, v) in _before) Environment.SetEnvironmentVariable(k, v);
        foreach (var k in Caller.Keys) Environment.SetEnvironmentVariable(CallerVariables.Prefix + k, null);
    }

    [Test]
    public void The_tool_starts_without_the_callers_variables_and_gives_them_back_to_the_app()
    {
        var changes = CallerVariables.HandedOver();
        foreach (var name in new[] { "OPENSSL_CONF", "CORECLR_PROFILER_PATH", "DOTNET_STARTUP_HOOKS", "COREHOST_TRACEFILE", "TMPDIR", "LD_LIBRARY_PATH" })
        {
            Assert.That(changes, Does.ContainKey(name).WithValue(null), $"{name} is not in the tool's environment");
            Assert.That(changes, Does.ContainKey(CallerVariables.Prefix + name).WithValue(Caller[name]), $"{name} is handed over");
        }
        foreach (var name in new[] { "PATH", "HOME", "DOTNET_ROOT", "SOCKSHIM_POOL" })
            Assert.That(changes, Does.Not.ContainKey(name), $"{name} stays as it is");
        Assert.That(changes, Does.ContainKey("SOCKSHIM_CALLER_LD_PRELOAD").WithValue(null), "one the caller set under the prefix itself is dropped");
        Assert.That(changes.GetValueOrDefault("DOTNET_EnableDiagnostics"), Is.EqualTo(Environment.IsPrivilegedProcess ? "0" : null), "as root no debugger pipe or diagnostic socket");

        // What the tool's process starts with, then its first step.
        foreach (var (k, v) in changes) Environment.SetEnvironmentVariable(k, v);
        CallerVariables.Restore();
        foreach (var name in new[] { "OPENSSL_CONF", "CORECLR_PROFILER_PATH", "DOTNET_STARTUP_HOOKS", "COREHOST_TRACEFILE", "TMPDIR", "LD_LIBRARY_PATH" })
            Assert.That(Environment.GetEnvironmentVariable(name), Is.EqualTo(Caller[name]), $"{name} is back for the app");
        Assert.That(Environment.GetEnvironmentVariable("LD_PRELOAD"), Is.Null, "never made from a variable the caller set under the prefix");
        Assert.That(Environment.GetEnvironmentVariable("DOTNET_EnableDiagnostics"), Is.EqualTo(_before["DOTNET_EnableDiagnostics"]), "the tool's own setting is not the app's");
        Assert.That(Environment.GetEnvironmentVariables().Keys.Cast<string>().Where(k => k.StartsWith(CallerVariables.Prefix)), Is.Empty);
    }
}
