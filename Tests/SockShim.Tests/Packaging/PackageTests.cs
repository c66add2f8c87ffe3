using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace SockShim.Tests.Packaging;

/// <summary>
/// SockShim as a user gets it: the three packages packed into a folder feed, then, in fresh
/// projects outside the repository (its Directory.Build.* do not apply there) with their own
/// NuGet cache, the `sockshim` tool installed as a local tool from a tool manifest and into a
/// tool path, and a console app that adds the SockShim package. A TCP server in this process
/// reports the source address of every connection.
/// </summary>
[NonParallelizable]
public class PackageTests
{
    private DirectoryInfo _work = null!;
    private string _feed = null!, _packages = null!;
    private static readonly string Version = Regex.Match(File.ReadAllText(Path.Combine(RepoPaths.Root, "Directory.Build.props")), "<Version>([^<]+)</Version>").Groups[1].Value;

    [OneTimeSetUp]
    public void Pack()
    {
        // Private (0700): the feed, the cache and the projects are no other account's to change.
        _work = Directory.CreateTempSubdirectory("sockshim-packages-");
        _feed = Path.Combine(_work.FullName, "feed");
        _packages = Path.Combine(_work.FullName, "nuget-packages");
        foreach (var project in new[] { "Stack/SockShim.Stack.csproj", "Shim/SockShim.csproj", "Interceptor/SockShim.Interceptor.csproj" })
            Dotnet(RepoPaths.Root, ["pack", project, "-c", "Release", "-o", _feed, "-v", "q", "-nologo"], TimeSpan.FromMinutes(5), userCache: false);
        Assert.That(Directory.GetFiles(_feed, "*.nupkg").Select(Path.GetFileName),
            Is.EquivalentTo(new[] { $"SockShim.{Version}.nupkg", $"SockShim.Stack.{Version}.nupkg", $"SockShim.Tool.{Version}.nupkg" }));
    }

    [OneTimeTearDown]
    public void Clean() => _work?.Delete(recursive: true);

    [Test]
    [CancelAfter(600_000)]
    public void The_local_tool_from_a_manifest_gives_an_unmodified_apps_sockets_their_own_addresses()
    {
        string dir = WithLocalTool(NewFolder("tool-user"));

        string app = App(dir, "Plain", "", """
            using System.Net;
            using System.Net.Sockets;
            var server = IPEndPoint.Parse(args[0]);
            for (int i = 0; i < 3; i++)
            {
                using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                s.Connect(server);
                Console.WriteLine($"socket {s.LocalEndPoint}");
            }
            """);
        using var server = new SourceRecorder();
        var output = Dotnet(dir, ["tool", "run", "sockshim", "run", "--", "dotnet", app, server.EndPoint.ToString()]);
        var sources = server.Sources(3);
        Assert.That(sources, Is.Unique.And.None.EqualTo("127.0.0.1"), $"each connection from its own address, as the server saw it; the app said:\n{output}");
        Assert.That(sources, Has.All.StartsWith("127."), "from the loopback pool, the default");

        // The same app without the tool: every connection from 127.0.0.1, so the check above can fail.
        using var plain = new SourceRecorder();
        Dotnet(dir, ["exec", app, plain.EndPoint.ToString()]);
        Assert.That(plain.Sources(3), Has.All.EqualTo("127.0.0.1"));
    }

    [Test]
    [CancelAfter(600_000)]
    public void The_tool_installed_into_a_tool_path_runs_as_a_command()
    {
        string dir = NewFolder("tool-path");
        string bin = Path.Combine(dir, "bin");
        Dotnet(dir, ["tool", "install", "--tool-path", bin, "SockShim.Tool", "--version", Version]);
        var (exit, output, error) = Run(Path.Combine(bin, "sockshim"), ["--help"], dir, TimeSpan.FromMinutes(1));
        Assert.That(exit, Is.Zero, error);
        Assert.That(output, Does.Contain("run").And.Contain("serve").And.Contain("prepare").And.Contain("compare"));

        // The service unit the package ships, checked by systemd against this installed command:
        // the same file but for the command's path (the unit names /usr/local/bin/sockshim).
        string shipped = Directory.GetFiles(Path.Combine(bin, ".store"), "sockshim.service", SearchOption.AllDirectories).Single();
        string text = File.ReadAllText(shipped);
        Assert.That(text, Is.EqualTo(File.ReadAllText(Path.Combine(RepoPaths.Root, "Interceptor/service/sockshim.service"))), "the package carries the repository's unit");
        Assert.That(text, Does.Contain("ExecStart=/usr/local/bin/sockshim serve "));
        if (!File.Exists("/usr/bin/systemd-analyze")) Assert.Fail("missing precondition: needs systemd-analyze (`apt-get install systemd`); .ci/run installs it");
        Write(dir, "unit/sockshim.service", text.Replace("/usr/local/bin/sockshim", Path.Combine(bin, "sockshim")));
        var verify = Run("systemd-analyze", ["verify", Path.Combine(dir, "unit/sockshim.service")], dir, TimeSpan.FromMinutes(1));
        Assert.That((verify.Exit, verify.Err.Trim()), Is.EqualTo((0, "")), "systemd-analyze verify: no problem");
        // And it does fail, so the check above means something: a unit naming a command that is not there.
        Write(dir, "unit/broken.service", text.Replace("/usr/local/bin/sockshim", Path.Combine(bin, "no-such-command")));
        var broken = Run("systemd-analyze", ["verify", Path.Combine(dir, "unit/broken.service")], dir, TimeSpan.FromMinutes(1));
        Assert.That(broken.Exit, Is.Not.Zero, broken.Err);
    }

    [Test]
    [CancelAfter(600_000)]
    public void The_library_package_weaves_marked_methods_with_no_import_and_serves_TupleSocket()
    {
        string dir = WithLocalTool(NewFolder("library-user"));
        string app = App(dir, "Library", $"""<PackageReference Include="SockShim" Version="{Version}" />""", """
            using System.Net;
            using System.Net.Sockets;
            using SockShim;
            var server = IPEndPoint.Parse(args[0]);
            Calls.Connect("plain", server);
            Calls.Marked(server);
            Calls.Connect("plain", server);
            using (var tuple = new TupleSocket(TupleFamilies.AF_INET_TUPLE, SocketType.Stream, ProtocolType.Tcp))
            {
                tuple.Connect(server);
                Console.WriteLine($"tuple {((IPEndPoint)tuple.LocalEndPoint!).Address}");
            }
            static class Calls
            {
                [NewAddressPerSocket]
                public static void Marked(IPEndPoint server) => Connect("marked", server);

                public static void Connect(string kind, IPEndPoint server)
                {
                    using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                    s.Connect(server);
                    Console.WriteLine($"{kind} {((IPEndPoint)s.LocalEndPoint!).Address}");
                }
            }
            """);
        using var server = new SourceRecorder();
        var output = Dotnet(dir, ["tool", "run", "sockshim", "run", "--mode", "attribute", "--", "dotnet", app, server.EndPoint.ToString()]);
        var sources = server.Sources(4);
        TestContext.Out.WriteLine(output);
        var said = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim().Split(' ')).Where(f => f.Length == 2).ToList();
        Assert.That(said.Select(f => f[0]), Is.EqualTo(new[] { "plain", "marked", "plain", "tuple" }), output);
        // The server's view, in connection order.
        Assert.That(sources[0], Is.EqualTo("127.0.0.1"), "an unmarked socket keeps the host's address");
        Assert.That(sources[1], Is.Not.EqualTo("127.0.0.1").And.StartsWith("127."), "the marked method's socket has its own address");
        Assert.That(sources[2], Is.EqualTo("127.0.0.1"));
        Assert.That(sources[3], Is.Not.EqualTo("127.0.0.1").And.StartsWith("127.").And.Not.EqualTo(sources[1]), "AF_INET_TUPLE: its own address");
        Assert.That(said.Select(f => f[1]), Is.EqualTo(sources), "each socket reports the address the server saw");
    }

    private string NewFolder(string name)
    {
        string dir = Path.Combine(_work.FullName, name);
        Directory.CreateDirectory(dir);
        // Only the feed, and the packages this machine already has, as a user's offline setup.
        string cache = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        Write(dir, "nuget.config", $"""
            <configuration>
              <packageSources>
                <clear />
                <add key="sockshim" value="{_feed}" />
                <add key="machine" value="{cache}" />
              </packageSources>
            </configuration>
            """);
        return dir;
    }

    // A tool manifest in the folder, and the tool installed from it as a local tool.
    private string WithLocalTool(string dir)
    {
        Write(dir, ".config/dotnet-tools.json", """{ "version": 1, "isRoot": true, "tools": {} }""");
        Dotnet(dir, ["tool", "install", "--local", "SockShim.Tool", "--version", Version]);
        Assert.That(File.ReadAllText(Path.Combine(dir, ".config/dotnet-tools.json")), Does.Contain("\"sockshim\""), "the manifest names the command");
        return dir;
    }

    // A console project of the user's, built; the path of its dll.
    private string App(string dir, string name, string references, string program)
    {
        string project = Path.Combine(dir, name);
        Write(project, $"{name}.csproj", Programs.ConsoleProject(items: references));
        Write(project, "Program.cs", program);
        Dotnet(project, ["build", "-v", "q", "-nologo"]);
        return Path.Combine(project, "bin", "Debug", "net10.0", $"{name}.dll");
    }

    private static void Write(string dir, string name, string text)
    {
        string path = Path.Combine(dir, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
    }

    // The repository's own commands keep the machine's NuGet cache (its obj/ records where each
    // package is); the user's projects get their own, so no earlier run's package is taken.
    private string Dotnet(string dir, string[] args, TimeSpan? timeout = null, bool userCache = true)
    {
        var (exit, output, error) = Run("dotnet", args, dir, timeout ?? TimeSpan.FromMinutes(4), userCache);
        Assert.That(exit, Is.Zero, $"dotnet {string.Join(' ', args)} in {dir}:\n{output}\n{error}");
        return output;
    }

    private (int Exit, string Out, string Err) Run(string file, string[] args, string dir, TimeSpan timeout, bool userCache = true)
    {
        var psi = new ProcessStartInfo(file) { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // The user's environment, not the test host's: no SockShim settings, no MSBuild of this run.
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("SOCKSHIM_") || k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase) || k.StartsWith("VSTEST") || k == "DOTNET_HOST_PATH").ToList())
            psi.Environment.Remove(key);
        if (userCache)
        {
            psi.Environment["NUGET_PACKAGES"] = _packages;
            // dotnet's own home too: its local-tool resolver cache would point at an earlier run's packages.
            psi.Environment["DOTNET_CLI_HOME"] = Path.Combine(_work.FullName, "home");
        }
        else psi.Environment.Remove("NUGET_PACKAGES");
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        return Programs.Complete(Process.Start(psi)!, $"{file} {string.Join(' ', args)} in {dir}", timeout);
    }

    /// <summary>A TCP server on 127.0.0.1 that records each connection's source address, in order.</summary>
    private sealed class SourceRecorder : IDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly List<string> _sources = new();
        private readonly Thread _thread;

        public SourceRecorder()
        {
            _listener.Start();
            _thread = new Thread(() =>
            {
                try
                {
                    while (true)
                    {
                        using var client = _listener.AcceptSocket();
                        lock (_sources) _sources.Add(((IPEndPoint)client.RemoteEndPoint!).Address.ToString());
                    }
                }
                catch (SocketException) { } // stopped
                catch (ObjectDisposedException) { }
            }) { IsBackground = true };
            _thread.Start();
        }

        public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndpoint;

        /// <summary>The first <paramref name="count"/> sources (their connections were made by a program that has exited).</summary>
        public List<string> Sources(int count)
        {
            var until = DateTime.UtcNow.AddSeconds(10);
            while (true)
            {
                lock (_sources)
                {
                    if (_sources.Count >= count) return _sources.ToList();
                    if (DateTime.UtcNow > until) Assert.Fail($"the server saw {_sources.Count} connections, not {count}: {string.Join(", ", _sources)}");
                }
                Thread.Sleep(20);
            }
        }

        public void Dispose() => _listener.Stop();
    }
}
