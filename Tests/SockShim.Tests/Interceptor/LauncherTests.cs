using System.Diagnostics;
using System.Net;
using System.Text.RegularExpressions;

namespace SockShim.Tests.Interceptor;

/// <summary>`sockshim run` on the unmodified LegacyApp, each a separate process, against the
/// echo server in another process: what the server reports is the truth.</summary>
[NonParallelizable]
public class LauncherTests() : EchoServerFixture("127.103.0.0/24", "launcher")
{

    private Dictionary<string, string> PoolEnvironment() => _pool.Environment;

    private (int Exit, string Out, string Err) Sockshim(params string[] args) =>
        Programs.Run("SockShim.Interceptor", args, PoolEnvironment(), TimeSpan.FromMinutes(3));

    private static List<(string Api, IPEndPoint? Local, IPEndPoint? Seen, string Line)> Results(string output) =>
        Regex.Matches(output, @"^api=(\S+) (?:local=(\S+) seen=(\S+)|error=.*)$", RegexOptions.Multiline)
            .Select(m => (m.Groups[1].Value,
                m.Groups[2].Success && m.Groups[2].Value != "-" ? IPEndPoint.Parse(m.Groups[2].Value) : null,
                m.Groups[3].Success && m.Groups[3].Value != "-" ? IPEndPoint.Parse(m.Groups[3].Value) : null,
                m.Value)).ToList();

    private static readonly string[] Apis = ["socket-sync", "socket-task", "socket-saea", "socket-begin-end", "socket-multi-address",
        "tcpclient-sync", "tcpclient-async", "socket-sendto", "socket-sendtoasync", "udpclient", "httpclient"];

    [Test]
    public void Mode_all_gives_every_api_its_own_address_and_the_app_sees_what_the_server_sees()
    {
        var (exit, output, error) = Sockshim("run", "--mode", "all", "--", "dotnet", Programs.PathOf("LegacyApp"), _serverEndpoint);
        Assert.That(exit, Is.Zero, output + error);
        var results = Results(output);
        Assert.That(results.Select(r => r.Api), Is.EquivalentTo(Apis), output);
        foreach (var r in results)
        {
            Assert.That(r.Seen, Is.Not.Null, r.Line);
            Assert.That(_pool.Pool.Definition.Contains(r.Seen!.Address), Is.True, $"{r.Api} came from the pool: {r.Line}");
            if (r.Local is not null) Assert.That(r.Local, Is.EqualTo(r.Seen), $"{r.Api}: LocalEndPoint equals the server's view");
        }
        Assert.That(results.Select(r => r.Seen!.Address).Distinct().Count(), Is.EqualTo(Apis.Length), "one address per socket");
        Assert.That(_pool.HeldSlots(), Is.Zero, "every address released when the app ended");
    }

    // The command replaces the launcher (execve): the pid that was started is the app's, a
    // signal sent to it reaches the app itself, and the exit status is the app's own.
    [Test]
    [CancelAfter(120_000)]
    public void The_command_keeps_the_launchers_pid_gets_its_signals_and_its_exit_code()
    {
        // A script that says its pid, exits 42 on SIGTERM, and otherwise gives up after 30 s.
        const string script = "trap 'echo got-term; exit 42' TERM; echo \"pid $$\"; for i in $(seq 600); do sleep 0.05; done; echo timed-out";
        using var launcher = Programs.Start("SockShim.Interceptor", ["run", "--", "bash", "-c", script], PoolEnvironment());
        string? first = Programs.Line(launcher);
        Assert.That(first, Is.EqualTo($"pid {launcher.Id}"), "the app runs in the launcher's own process");
        Assert.That(Tmds.Linux.LibC.kill(launcher.Id, Tmds.Linux.LibC.SIGTERM), Is.Zero);
        var (exit, output, error) = Programs.Complete(launcher, "sockshim run -- bash", TimeSpan.FromSeconds(60));
        Assert.That(output.Trim(), Is.EqualTo("got-term"), "SIGTERM reached the app's own handler: " + error);
        Assert.That(exit, Is.EqualTo(42), "the exit status is the app's");
    }

    [Test]
    [CancelAfter(120_000)]
    public void A_command_started_under_the_launcher_dies_of_a_broken_pipe_as_from_a_shell()
    {
        // .NET ignores SIGPIPE for itself; a command it execs must not inherit that.
        var (exit, output, error) = Sockshim("run", "--", "bash", "-c", "yes | head -1 > /dev/null; echo \"${PIPESTATUS[0]}\"");
        Assert.That(exit, Is.Zero, error);
        Assert.That(output.Trim(), Is.EqualTo("141"), "yes ended by SIGPIPE (128 + 13), not by a write error");
    }

    /// <summary>Sockets an app never disposes: their addresses are held while the sockets live
    /// and go back when the GC finalizes them, seen in the pool's table while the app still runs
    /// (not at its exit, which releases everything anyway).</summary>
    [Test]
    [CancelAfter(120_000)]
    public void Sockets_the_app_abandons_give_their_addresses_back_when_finalized()
    {
        Assert.That(_pool.HeldSlots(), Is.Zero, "no address held before the app starts");
        using var app = Programs.Start("SockShim.Interceptor", ["run", "--mode", "all", "--", "dotnet", Programs.PathOf("LegacyApp"), "--abandon", _serverEndpoint, "5"],
            PoolEnvironment(), redirectInput: true);
        try
        {
            Assert.That(Programs.Line(app), Is.EqualTo("connected 5"), app.StandardError.ReadToEnd);
            Assert.That(_pool.HeldSlots(), Is.EqualTo(5), "each abandoned socket still holds its address while it is alive");
            app.StandardInput.WriteLine("collect");
            app.StandardInput.Flush();
            Assert.That(Programs.Line(app), Is.EqualTo("finalized"));
            Assert.That(_pool.HeldSlots(), Is.Zero, "the finalizers gave every address back, with the app still running");
            Assert.That(app.HasExited, Is.False, "checked while the app still ran");
        }
        finally
        {
            app.StandardInput.Close();
            Programs.Complete(app, "LegacyApp --abandon", TimeSpan.FromSeconds(60));
        }
    }

    [Test]
    public void Without_the_launcher_the_same_binary_uses_the_common_address()
    {
        var (exit, output, _) = Programs.Run("LegacyApp", [_serverEndpoint]);
        Assert.That(exit, Is.Zero, output);
        var results = Results(output);
        Assert.That(results, Has.Count.EqualTo(Apis.Length));
        Assert.That(results.All(r => r.Seen!.Address.Equals(IPAddress.Loopback)), Is.True, output);
    }

    [Test]
    public void Mode_tuple_gives_addresses_only_to_AF_INET_TUPLE_sockets()
    {
        var (exit, output, error) = Sockshim("run", "--mode", "tuple", "--", "dotnet", Programs.PathOf("LegacyApp"), _serverEndpoint, "--tuple");
        Assert.That(exit, Is.Zero, output + error);
        var results = Results(output);
        foreach (var r in results)
        {
            bool tuple = r.Api.StartsWith("tuple-");
            Assert.That(_pool.Pool.Definition.Contains(r.Seen!.Address), Is.EqualTo(tuple), r.Line);
            if (!tuple) Assert.That(r.Seen.Address, Is.EqualTo(IPAddress.Parse(r.Api == "plain-bind-specific" ? "127.0.0.5" : "127.0.0.1")), r.Line);
            // An unbound UDP socket reports the wildcard address; the port must still match.
            if (r.Local is not null && !r.Local.Address.Equals(IPAddress.Any)) Assert.That(r.Local, Is.EqualTo(r.Seen), r.Line);
        }
        Assert.That(results.Count(r => r.Api.StartsWith("tuple-")), Is.EqualTo(3));
    }

    [Test]
    public void Mode_all_leaves_a_specific_bind_alone_and_gives_a_tuple_wildcard_bind_its_own_address_with_the_port()
    {
        var (exit, output, error) = Sockshim("run", "--mode", "all", "--", "dotnet", Programs.PathOf("LegacyApp"), _serverEndpoint, "--tuple");
        Assert.That(exit, Is.Zero, output + error);
        var results = Results(output).ToDictionary(r => r.Api);
        Assert.That(results["plain-bind-specific"].Seen!.Address, Is.EqualTo(IPAddress.Parse("127.0.0.5")), "a specific bind is the app's choice");
        var bound = results["tuple-bind-any"];
        Assert.That(_pool.Pool.Definition.Contains(bound.Seen!.Address), Is.True, bound.Line);
        Assert.That(bound.Local, Is.EqualTo(bound.Seen), "the port chosen at bind is kept on the new address");
        Assert.That(results.Values.Where(r => r.Api != "plain-bind-specific").All(r => _pool.Pool.Definition.Contains(r.Seen!.Address)), Is.True, output);
    }

    [Test]
    public void An_AF_INET_TUPLE_socket_without_the_launcher_fails_instead_of_using_the_common_address()
    {
        var (exit, output, _) = Programs.Run("LegacyApp", [_serverEndpoint, "--tuple"]);
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(output, Does.Contain("api=tuple-tcp error=AddressFamilyNotSupported"));
        Assert.That(output, Does.Contain("api=plain-bind-specific local=127.0.0.5"));
        Assert.That(output, Does.Contain("api=tuple-udp error=AddressFamilyNotSupported"));
        Assert.That(output, Does.Contain("api=tuple-bind-any error=AddressFamilyNotSupported"));
    }

    [Test]
    public void A_test_project_run_with_dotnet_test_under_the_launcher_gets_per_socket_addresses()
    {
        string outFile = Path.Combine(_pool.StateDirectory, "legacy-tests.out");
        var env = PoolEnvironment();
        env["LEGACY_SERVER"] = _serverEndpoint;
        env["LEGACY_OUT"] = outFile;
        string project = Path.Combine(RepoPaths.Root, "Examples", "LegacyTests");
        var (exit, output, error) = Programs.Run("SockShim.Interceptor", ["run", "--", "dotnet", "test", project, "--nologo"], env, TimeSpan.FromMinutes(4));
        Assert.That(exit, Is.Zero, output + error);
        Assert.That(output, Does.Contain("Passed!"));
        var seen = Regex.Matches(File.ReadAllText(outFile), @"you are (\S+)").Select(m => IPEndPoint.Parse(m.Groups[1].Value)).ToList();
        Assert.That(seen, Has.Count.EqualTo(3));
        Assert.That(seen.All(e => _pool.Pool.Definition.Contains(e.Address)), Is.True, string.Join(", ", seen));
        Assert.That(seen.Select(e => e.Address).Distinct().Count(), Is.EqualTo(3));
    }

    // `dotnet run` under the launcher (which execs it): the app it builds and starts gets its
    // addresses, one per socket, and gives them back when it ends.
    [Test]
    [CancelAfter(300_000)]
    public void An_app_started_with_dotnet_run_under_the_launcher_gets_per_socket_addresses()
    {
        string project = Path.Combine(RepoPaths.Root, "Examples", "LegacyApp");
        var (exit, output, error) = Programs.Run("SockShim.Interceptor", ["run", "--mode", "all", "--", "dotnet", "run", "--project", project, "--", _serverEndpoint],
            PoolEnvironment(), TimeSpan.FromMinutes(4));
        Assert.That(exit, Is.Zero, output + error);
        var results = Results(output);
        Assert.That(results.Select(r => r.Api), Is.EquivalentTo(Apis), output);
        Assert.That(results.All(r => r.Seen is not null && _pool.Pool.Definition.Contains(r.Seen.Address)), Is.True, output);
        Assert.That(results.Select(r => r.Seen!.Address).Distinct().Count(), Is.EqualTo(Apis.Length), "one address per socket");
        Assert.That(_pool.HeldSlots(), Is.Zero, "every address released when the app ended");
    }

    [Test]
    public void The_wrapped_command_exit_code_is_passed_through()
    {
        Assert.That(Sockshim("run", "--", "bash", "-c", "exit 7").Exit, Is.EqualTo(7));
        Assert.That(Sockshim("run", "--", "dotnet", Programs.PathOf("LegacyApp")).Exit, Is.EqualTo(2), "LegacyApp's usage error");
        var (exit, _, error) = Sockshim("run", "--", "/nonexistent/app");
        Assert.That(exit, Is.EqualTo(127));
        Assert.That(error, Does.Contain("cannot start '/nonexistent/app'"));
    }

    [Test]
    public void A_bad_setting_stops_the_launcher_before_the_app_starts()
    {
        var (exit, output, error) = Sockshim("run", "--mode", "some", "--", "dotnet", Programs.PathOf("LegacyApp"), _serverEndpoint);
        Assert.That(exit, Is.EqualTo(2));
        Assert.That(error, Does.Contain("--mode = 'some'").And.Contain("tuple").And.Contain("all"));
        Assert.That(output, Does.Not.Contain("api="), "the app never ran");
        Assert.That(error, Does.Not.Contain("   at "));
    }

    [Test]
    public void An_app_started_with_the_hook_but_without_the_woven_assembly_refuses_to_run()
    {
        var env = PoolEnvironment();
        env["DOTNET_STARTUP_HOOKS"] = Programs.PathOf("SockShim.StartupHook");
        var (exit, output, error) = Programs.Run("LegacyApp", [_serverEndpoint], env);
        Assert.That(exit, Is.EqualTo(97));
        Assert.That(error, Does.Contain("the woven System.Net.Sockets was not loaded").And.Contain("sockshim run"));
        Assert.That(output, Does.Not.Contain("api="));
    }

    [Test]
    public void A_woven_assembly_from_another_runtime_is_refused()
    {
        var runtime = SockShim.Interceptor.Store.InstalledRuntimes.Find().Single(r => r.Version == Environment.Version.ToString());
        string root = Path.Combine(_pool.StateDirectory, "stale-store");
        var store = new SockShim.Interceptor.Store.WovenStore(root, SockShim.Interceptor.Weaving.StoreWeaver.Weave);
        var prepared = store.Prepare(runtime);
        // Replace the good copy by one stamped as woven from another runtime version.
        SockShim.Interceptor.Weaving.SocketsWeaver.Weave(runtime.SocketsPath, prepared.AssemblyPath, "10.0.1");
        var env = PoolEnvironment();
        env["DOTNET_SHARED_STORE"] = store.StoreDirectory;
        env["DOTNET_ADDITIONAL_DEPS"] = store.DepsDirectory;
        env["DOTNET_STARTUP_HOOKS"] = Programs.PathOf("SockShim.StartupHook");
        var (exit, _, error) = Programs.Run("LegacyApp", [_serverEndpoint], env);
        Assert.That(exit, Is.EqualTo(97));
        Assert.That(error, Does.Contain("woven from runtime 10.0.1").And.Contain($"runs on {runtime.Version}").And.Contain("sockshim prepare"));
    }

    /// <summary>A socket the app bound itself through its descriptor keeps that address under
    /// mode all, whether the kernel picked its port at bind or defers it to connect
    /// (IP_BIND_ADDRESS_NO_PORT); a datagram socket SockShim bound, whose first send failed, sends
    /// again from the same pool address instead of failing at a second bind.</summary>
    [Test]
    public void Sockets_bound_outside_Socket_keep_their_binding()
    {
        var (exit, output, error) = Sockshim("run", "--mode", "all", "--", "dotnet", Programs.PathOf("SockShim.TestAgent"), "bound-outside", _serverEndpoint);
        Assert.That(exit, Is.Zero, output + error);
        string Seen(string label) => Regex.Match(output, $@"^{label} seen (\S+)$", RegexOptions.Multiline) is { Success: true } m ? m.Groups[1].Value : "(no line) " + output + error;
        Assert.That(IPEndPoint.Parse(Seen("no-port")).Address, Is.EqualTo(IPAddress.Parse("127.0.0.9")), "the address bound with IP_BIND_ADDRESS_NO_PORT");
        Assert.That(IPEndPoint.Parse(Seen("port")).Address, Is.EqualTo(IPAddress.Parse("127.0.0.10")), "the address bound with its port");
        Assert.That(_pool.Pool.Definition.Contains(IPEndPoint.Parse(Seen("retried")).Address), Is.True, "the datagram sent again came from the pool: " + output);
        Assert.That(IPEndPoint.Parse(Seen("autobound")).Address, Is.EqualTo(IPAddress.Loopback),
            "a datagram socket the kernel bound at a failed send keeps that binding, as without SockShim, instead of failing at a second bind");
    }

    /// <summary>Races an app can run into: a connect on one thread while another disposes the
    /// socket, two threads sending a fresh socket's first datagrams at once, and a wildcard bind
    /// (given its own address: wildcardBind own) while another thread disposes the socket. Neither throws
    /// what plain .NET would not (a NullReferenceException from a lease given back under the
    /// binder, an InvalidArgument from a second bind), and no address stays held: the pool's
    /// table shows none while the app still runs. (Races: before the fix a run of 1,500 each
    /// left addresses held or a send failed every time seen, not in a way a single try must.)</summary>
    [Test]
    [CancelAfter(300_000)]
    public void A_connect_racing_Dispose_and_concurrent_first_sends_leave_no_address_held()
    {
        using var app = Programs.Start("SockShim.Interceptor", ["run", "--mode", "all", "--wildcard-bind", "own", "--", "dotnet", Programs.PathOf("SockShim.TestAgent"), "races", "1500"],
            PoolEnvironment(), redirectInput: true);
        try
        {
            Assert.That(Programs.Line(app), Is.EqualTo("dispose-race unexpected 0"));
            Assert.That(Programs.Line(app), Is.EqualTo("first-sends failed 0"));
            Assert.That(Programs.Line(app), Is.EqualTo("bind-race unexpected 0"));
            Assert.That(Programs.Line(app), Is.EqualTo("done"));
            Assert.That(_pool.HeldSlots(), Is.Zero, "no address held once every socket is disposed, with the app still running");
        }
        finally
        {
            app.StandardInput.Close();
            var (_, _, error) = Programs.Complete(app, "TestAgent races", TimeSpan.FromSeconds(60));
            TestContext.Out.WriteLine(error.Length > 4000 ? error[..4000] : error);
        }
    }

    /// <summary>A socket disposed on one thread while another connects it, its descriptor number
    /// then given to a new socket: SockShim binds the first socket's descriptor by number, and
    /// every bind(2) is slowed (strace) so the dispose falls inside that bind. The new socket must
    /// be untouched (unbound before its own connect, which then gets it an address of its own),
    /// as Socket.Bind guaranteed by holding the socket open.</summary>
    [Test]
    [CancelAfter(120_000)]
    public void A_descriptor_closed_under_SockShims_bind_is_not_bound_in_a_new_sockets_place()
    {
        string strace = new[] { "/usr/bin/strace", "/bin/strace" }.FirstOrDefault(File.Exists)
            ?? throw new AssertionException("missing precondition: strace (apt package strace), which slows every bind(2) for this test");
        string launcher = Path.Combine(AppContext.BaseDirectory, "SockShim.Interceptor.dll");
        var (exit, output, error) = Programs.RunFile(strace, ["-f", "-qq", "-o", "/dev/null", "-e", "trace=bind", "-e", "inject=bind:delay_enter=300000",
            "dotnet", launcher, "run", "--mode", "all", "--", "dotnet", Programs.PathOf("SockShim.TestAgent"), "fd-reuse"], TimeSpan.FromSeconds(90), PoolEnvironment());
        Assert.That(exit, Is.Zero, output + error);
        Assert.That(output, Does.Contain("new before-connect unbound"), "the new socket was bound by nobody: " + output + error);
        var connected = Regex.Match(output, @"^new connected (\S+)$", RegexOptions.Multiline);
        Assert.That(connected.Success, Is.True, output + error);
        Assert.That(_pool.Pool.Definition.Contains(IPEndPoint.Parse(connected.Groups[1].Value).Address), Is.True, output);
    }

    /// <summary>A socket used after Dispose throws ObjectDisposedException as without SockShim,
    /// and takes no address that could never go back (its Disposed hook has run): the pool's
    /// table shows none held while the app still runs.</summary>
    [Test]
    [CancelAfter(120_000)]
    public void A_socket_used_after_Dispose_throws_as_without_SockShim_and_holds_no_address()
    {
        using var app = Programs.Start("SockShim.Interceptor", ["run", "--mode", "all", "--", "dotnet", Programs.PathOf("SockShim.TestAgent"), "use-after-dispose", _serverEndpoint, "4"],
            PoolEnvironment(), redirectInput: true);
        try
        {
            var lines = new List<string>();
            for (string? line; (line = Programs.Line(app)) is not null && line != "done";) lines.Add(line);
            Assert.That(lines, Has.Count.EqualTo(8).And.All.EndsWith(" ObjectDisposedException"), string.Join("\n", lines));
            Assert.That(_pool.HeldSlots(), Is.Zero, "no address held by the disposed sockets, with the app still running");
        }
        finally
        {
            app.StandardInput.Close();
            Programs.Complete(app, "TestAgent use-after-dispose", TimeSpan.FromSeconds(60));
        }
    }

    /// <summary>wildcardBind own: a client socket that binds the wildcard before its first send
    /// (<c>new UdpClient(0)</c>) arrives at the server from its own address; with the default
    /// (keep) it keeps the common address, and a listener on 0.0.0.0:port stays on every address.
    /// With own the listener, which binds the same way, is given an address too: the trade-off.</summary>
    [TestCase("own")]
    [TestCase(null)]
    public void Wildcard_binds_get_their_own_address_only_when_asked(string? setting)
    {
        string[] args = setting is null ? ["run"] : ["run", "--wildcard-bind", setting];
        var (exit, output, error) = Sockshim([.. args, "--", "dotnet", Programs.PathOf("SockShim.TestAgent"), "wildcard", _serverEndpoint]);
        Assert.That(exit, Is.Zero, output + error);
        var client = System.Text.RegularExpressions.Regex.Match(output, @"^client (\S+) seen (\S+)$", System.Text.RegularExpressions.RegexOptions.Multiline);
        var listener = System.Text.RegularExpressions.Regex.Match(output, @"^listener (\S+)$", System.Text.RegularExpressions.RegexOptions.Multiline);
        Assert.That(client.Success && listener.Success, Is.True, output + error);
        var seen = IPEndPoint.Parse(client.Groups[2].Value);
        var local = IPEndPoint.Parse(client.Groups[1].Value);
        Assert.That(seen.Port, Is.EqualTo(local.Port), "the server saw the socket's port");
        if (setting == "own")
        {
            Assert.That(seen, Is.EqualTo(local), "and its own address, as LocalEndPoint reports it");
            Assert.That(seen.Address.ToString(), Does.StartWith("127.103.0."), "the client's datagram came from a pool address");
            Assert.That(listener.Groups[1].Value, Does.StartWith("127.103.0."), "the listener bound the same way got one too");
            Assert.That(output, Does.Contain("listener nothing"), "so a datagram to 127.0.0.1 does not reach it");
        }
        else
        {
            Assert.That(seen.Address, Is.EqualTo(IPAddress.Loopback), "the client kept the common address");
            Assert.That(listener.Groups[1].Value, Does.StartWith("0.0.0.0:"), "the listener is untouched");
            Assert.That(output, Does.Contain("listener received"), "and receives what is sent to 127.0.0.1");
        }
    }
}
