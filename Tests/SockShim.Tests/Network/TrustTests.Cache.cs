using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;

namespace SockShim.Tests.Network;

/// <summary>
/// Attacks 2 and 3 of the trust model: crossgen2's restore in a shared temporary directory, and
/// a cache or tool directory trusted by its name. The attacker plants its files as an
/// unprivileged user; root's `sockshim` is run as a separate process, and what happened is read
/// from outside: exit codes and messages, a marker file the planted build would write, the
/// connections a planted package source would get, the bytes of the woven file.
/// </summary>
public partial class TrustTests
{
    /// <summary>Attack 2: another account plants Directory.Build.props/targets (code run by
    /// MSBuild as root), a NuGet.Config naming its own package source, a Directory.Build.rsp
    /// switching the imports back on and per-user MSBuild imports, and names its props in root's
    /// environment (CustomBeforeMicrosoftCommonProps, XDG_DATA_HOME), in a sticky world-writable temporary directory (a stand-in
    /// for /tmp: TMPDIR points at it) that is also above the cache. crossgen2 must really be
    /// restored (an empty packages folder): it is, with this account's sources, and none of the
    /// planted files has any effect.</summary>
    [Test]
    public void Crossgen2s_restore_ignores_the_build_and_NuGet_files_another_account_plants_above_it()
    {
        string shared = $"/dev/shm/sockshim-test-sharedtmp-{_id}";
        string packages = $"/dev/shm/sockshim-test-packages-{_id}";
        string marker = Path.Combine(shared, "planted-build-ran");
        var bogus = new TcpListener(IPAddress.Loopback, 0);
        int connections = 0;
        try
        {
            Directory.CreateDirectory(shared);
            File.SetUnixFileMode(shared, (UnixFileMode)0b1_111_111_111); // like /tmp: root's, sticky, everyone's to write
            Directory.CreateDirectory(packages);
            File.SetUnixFileMode(packages, (UnixFileMode)0b111_000_000);
            bogus.Start();
            int port = ((IPEndPoint)bogus.LocalEndpoint).Port;
            _ = Task.Run(async () =>
            {
                try { while (true) { using var c = await bogus.AcceptTcpClientAsync(); Interlocked.Increment(ref connections); } }
                catch (Exception ex) when (ex is SocketException or ObjectDisposedException) { }
            });

            string props = $"""
                <Project InitialTargets="Planted">
                  <Target Name="Planted"><Exec Command="echo root ran the planted build &gt;&gt; {marker}" /></Target>
                </Project>
                """;
            string config = $"""<configuration><packageSources><clear /><add key="planted" value="http://127.0.0.1:{port}/v3/index.json" allowInsecureConnections="true" /></packageSources></configuration>""";
            var (planted, output) = AsAttacker(
                $"cat > {shared}/Directory.Build.props <<'EOF'\n{props}\nEOF\n" +
                $"cp {shared}/Directory.Build.props {shared}/Directory.Build.targets && " +
                $"printf '%s' '{config}' > {shared}/NuGet.Config && " +
                $"printf '%s\\n' '-p:ImportDirectoryBuildProps=true' '-p:ImportDirectoryBuildTargets=true' > {shared}/Directory.Build.rsp && " +
                $"mkdir -p {shared}/xdg/Microsoft/MSBuild/Current/Imports/Microsoft.Common.props/ImportBefore && " +
                $"cp {shared}/Directory.Build.props {shared}/xdg/Microsoft/MSBuild/Current/Imports/Microsoft.Common.props/ImportBefore/planted.props");
            Assert.That(planted, Is.Zero, output);

            // And in root's environment (sudo -E, the attacker review): MSBuild takes every variable
            // as a property, and looks for per-user imports under XDG_DATA_HOME.
            var env = new Dictionary<string, string>
            {
                ["TMPDIR"] = shared, ["NUGET_PACKAGES"] = packages,
                ["CustomBeforeMicrosoftCommonProps"] = $"{shared}/Directory.Build.props", ["XDG_DATA_HOME"] = $"{shared}/xdg",
            };
            var (exit, stdout, stderr) = Programs.Run("SockShim.Interceptor", ["prepare", "--cache", Path.Combine(shared, "cache")], env, TimeSpan.FromMinutes(5));
            Assert.That(File.Exists(marker), Is.False, "the planted Directory.Build.props/targets never ran");
            Assert.That(Volatile.Read(ref connections), Is.Zero, "the planted package source was never asked");
            Assert.That(exit, Is.Zero, stdout + stderr);
            Assert.That(stdout, Does.Contain("ReadyToRun").And.Not.Contain("IL-only"), stdout + stderr);
            string version = Environment.Version.ToString();
            Assert.That(File.Exists(Path.Combine(packages, "microsoft.netcore.app.crossgen2.linux-x64", version, "tools", "crossgen2")), Is.True,
                "crossgen2 was restored into the empty packages folder: the restore ran");
            Assert.That(Directory.GetFileSystemEntries(Path.Combine(shared, "cache", "tmp")), Is.Empty, "the private restore directory is gone");
            Assert.That(Directory.GetDirectories(shared, "sockshim-crossgen-*"), Is.Empty, "nothing was restored in the shared directory");
            AssertProtectedUnchanged();
        }
        finally
        {
            bogus.Stop();
            if (Directory.Exists(shared)) Directory.Delete(shared, true);
            if (Directory.Exists(packages)) Directory.Delete(packages, true);
        }
    }

    /// <summary>Attack 3: root is pointed at a cache another account can change (its own, one
    /// under a directory of its own, or one anyone may write), through --cache or SOCKSHIM_CACHE,
    /// with a woven copy and marker planted in it. Root refuses before the command runs: exit 2,
    /// one line saying what is wrong and what to do.</summary>
    [TestCase("attacker's", "--cache")]
    [TestCase("attacker's", "SOCKSHIM_CACHE")]
    [TestCase("under the attacker's", "--cache")]
    [TestCase("0777", "--cache")]
    public void As_root_a_cache_another_account_can_change_is_refused(string cacheKind, string how)
    {
        string top = $"/dev/shm/sockshim-test-usercache-{_id}";
        string cache = cacheKind == "under the attacker's" ? Path.Combine(top, "cache") : top;
        string ran = $"/dev/shm/sockshim-test-ran-{_id}";
        try
        {
            if (cacheKind == "0777")
            {
                Directory.CreateDirectory(top);
                File.SetUnixFileMode(top, (UnixFileMode)0b111_111_111);
            }
            else
            {
                var (made, output) = AsAttacker($"mkdir -m 755 {top} && mkdir -p {cache}/store && printf 'readytorun\\nsha256 {new string('0', 64)}\\n' > {cache}/store/planted.ok");
                Assert.That(made, Is.Zero, output);
            }
            var env = how == "SOCKSHIM_CACHE" ? new Dictionary<string, string> { ["SOCKSHIM_CACHE"] = cache } : null;
            string[] args = how == "--cache" ? ["run", "--cache", cache, "--", "sh", "-c", $"touch {ran}"] : ["run", "--", "sh", "-c", $"touch {ran}"];
            var (exit, stdout, stderr) = Programs.Run("SockShim.Interceptor", args, env, TimeSpan.FromMinutes(2));
            Assert.That(exit, Is.EqualTo(2), stdout + stderr);
            string why = cacheKind switch
            {
                "attacker's" => $"cache {cache} is owned by uid {_uid} ({_user})",
                "under the attacker's" => $"cache {cache} is under {top}, which is owned by uid {_uid} ({_user})",
                _ => $"cache {cache} is writable by other accounts (mode 777",
            };
            Assert.That(stderr, Does.Contain(why).And.Contain("as root SockShim uses only a cache that root owns").And.Contain("SOCKSHIM_CACHE"));
            Assert.That(stderr.Trim().Split('\n'), Has.Length.EqualTo(1), "one line");
            Assert.That(stderr, Does.Not.Contain("   at "));
            Assert.That(File.Exists(ran), Is.False, "the command never ran");
        }
        finally
        {
            if (Directory.Exists(top)) Directory.Delete(top, true);
            if (File.Exists(ran)) File.Delete(ran);
        }
    }

    /// <summary>Attack 3 through root's environment (sudo -E keeps DOTNET_ROOT): a copy of the
    /// runtime that another account can change, in a folder of its own or as one file of its
    /// own in a folder of root's. Its woven copy would be kept in root's cache under the real
    /// runtime's version, MVID and stamp (the copy has the same ones), and loaded by root's
    /// later runs on the real runtime. Root refuses before weaving anything: exit 2, one line
    /// naming what is wrong and what to do; the cache holds no woven copy.</summary>
    [TestCase("attacker's folder")]
    [TestCase("one file the attacker's")]
    [CancelAfter(300_000)]
    public void As_root_a_runtime_another_account_can_change_is_never_woven(string kind)
    {
        string root = $"/dev/shm/sockshim-test-dotnet-{_id}";
        string cache = $"/dev/shm/sockshim-test-runtimecache-{_id}";
        string version = Environment.Version.ToString();
        string installed = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        string runtime = Path.Combine(root, "shared", "Microsoft.NETCore.App", version);
        try
        {
            // Times kept, as any owner may set them: the copy's stamp is the real runtime's.
            string copy = $"mkdir -p {Path.GetDirectoryName(runtime)} && cp -r --preserve=timestamps {installed} {runtime}";
            if (kind == "attacker's folder")
            {
                var (made, output) = AsAttacker($"mkdir -m 755 {root} && {copy}");
                Assert.That(made, Is.Zero, output);
            }
            else
            {
                TwoHosts.Run("sh", ["-c", $"mkdir -m 755 {root} && {copy}"]);
                TwoHosts.Run("chown", [_user, Path.Combine(runtime, "System.Runtime.dll")]);
            }
            var env = new Dictionary<string, string> { ["DOTNET_ROOT"] = root };
            var (exit, stdout, stderr) = Programs.Run("SockShim.Interceptor", ["prepare", "--cache", cache], env, TimeSpan.FromMinutes(4));
            Assert.That(exit, Is.EqualTo(2), stdout + stderr);
            string why = kind == "attacker's folder"
                ? $"runtime {version} in {runtime}: {root} is owned by uid {_uid} ({_user})"
                : $"runtime {version} in {runtime}: {Path.Combine(runtime, "System.Runtime.dll")} is owned by uid {_uid} ({_user})";
            Assert.That(stderr, Does.Contain(why).And.Contain("as root SockShim weaves only a .NET runtime that root owns").And.Contain("DOTNET_ROOT"));
            Assert.That(stderr.Trim().Split('\n'), Has.Length.EqualTo(1), "one line");
            Assert.That(stderr, Does.Not.Contain("   at "));
            string store = Path.Combine(cache, "store");
            Assert.That(Directory.Exists(store) ? Directory.GetFiles(store, "System.Net.Sockets.dll", SearchOption.AllDirectories) : [], Is.Empty, "nothing was woven into root's cache");
        }
        finally { RemoveDirectories(root, cache); }
    }

    /// <summary>The same through a link (the attacker review): DOTNET_ROOT leads through a link the
    /// attacker owns to root's real runtime, which passes root's check; right after the check the
    /// attacker re-points the link at its own copy. Every read after the check goes through the
    /// path that was checked (the kernel's, links resolved when the runtime was found), so what is
    /// woven is the real file; before, the weaver read the attacker's through the link.</summary>
    [Test]
    [CancelAfter(120_000)]
    public void As_root_a_runtime_reached_through_a_link_is_read_by_the_path_that_was_checked()
    {
        string top = $"/dev/shm/sockshim-test-dnlink-{_id}";
        string cache = $"/dev/shm/sockshim-test-dnlinkcache-{_id}";
        string version = Environment.Version.ToString();
        string installed = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        string realShared = Path.GetFullPath(Path.Combine(installed, "..", ".."));
        try
        {
            var (made, output) = AsAttacker(
                $"mkdir -m 755 {top} && mkdir -p {top}/dn {top}/fake/shared/Microsoft.NETCore.App/{version} && " +
                $"echo not the runtime > {top}/fake/shared/Microsoft.NETCore.App/{version}/System.Net.Sockets.dll && ln -s {realShared} {top}/dn/shared");
            Assert.That(made, Is.Zero, output);

            var runtime = SockShim.Interceptor.Store.InstalledRuntimes.Find($"{top}/dn").Single(r => r.Version == version);
            Assert.That(runtime.Directory, Is.EqualTo(SockShim.Stack.Interop.HostPaths.Canonical(installed)), "found by the path the link led to");
            byte[]? woven = null;
            var store = new SockShim.Interceptor.Store.WovenStore(cache, (r, mvid, work, compiled, progress) =>
            {
                // Root's check has passed: the attacker re-points its link now.
                var (swapped, swapOutput) = AsAttacker($"ln -s {top}/fake/shared {top}/dn/next && mv -T {top}/dn/next {top}/dn/shared");
                Assert.That(swapped, Is.Zero, swapOutput);
                Assert.That(File.ReadAllText($"{top}/dn/shared/Microsoft.NETCore.App/{version}/System.Net.Sockets.dll"), Does.StartWith("not the runtime"), "the link is the attacker's copy now");
                woven = File.ReadAllBytes(r.SocketsPath);
                File.Copy(r.SocketsPath, compiled);
                return "not compiled (test)";
            });
            store.Prepare(runtime);
            Assert.That(woven, Is.EqualTo(File.ReadAllBytes(Path.Combine(installed, "System.Net.Sockets.dll"))), "what the weaver read is the runtime that was checked");
        }
        finally { RemoveDirectories(top, cache); }
    }

    /// <summary>The second attacker review: NUGET_PACKAGES leading through a link another account
    /// owns, re-pointed between root's check of crossgen2 and its run (reproduced by the review,
    /// the attacker's crossgen2 then compiled root's cached copy). crossgen2 is checked and run
    /// by the path the link led to when it was checked.</summary>
    [Test]
    public void As_root_crossgen2_reached_through_a_link_is_run_by_the_path_that_was_checked()
    {
        string top = $"/dev/shm/sockshim-test-pklink-{_id}";
        string packages = $"/dev/shm/sockshim-test-pkreal-{_id}";
        string version = Environment.Version.ToString();
        string tool = Path.Combine(packages, SockShim.Interceptor.Store.Crossgen.PackageId, version, "tools", "crossgen2");
        string? before = Environment.GetEnvironmentVariable("NUGET_PACKAGES");
        var work = Directory.CreateTempSubdirectory("sockshim-pklink-");
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(tool)!);
            File.WriteAllText(tool, "#!/bin/sh\nexit 0\n");
            File.SetUnixFileMode(tool, (UnixFileMode)0b111_101_101);
            var (made, output) = AsAttacker($"mkdir -m 755 {top} && ln -s {packages} {top}/pk");
            Assert.That(made, Is.Zero, output);
            Environment.SetEnvironmentVariable("NUGET_PACKAGES", $"{top}/pk");
            string? found = SockShim.Interceptor.Store.Crossgen.Find(version, work.FullName, out string why);
            Assert.That(found, Is.EqualTo(tool), $"the checked file by its resolved path, never through the attacker's link ({why})");
        }
        finally
        {
            Environment.SetEnvironmentVariable("NUGET_PACKAGES", before);
            work.Delete(recursive: true);
            if (Directory.Exists(top)) Directory.Delete(top, true);
            if (Directory.Exists(packages)) Directory.Delete(packages, true);
        }
    }

    /// <summary>Attack 3, the woven copy: its bytes changed after it was woven (one byte, same
    /// size). An app started with the launcher's record of the checked copy refuses to run
    /// (exit 97); `sockshim run` sees the hash differ and weaves it again; without the record the
    /// hook refuses too.</summary>
    [Test]
    public void A_woven_copy_changed_after_weaving_is_never_loaded()
    {
        string cache = $"/dev/shm/sockshim-test-woven-{_id}";
        try
        {
            var (exit, exports, stderr) = Programs.Run("SockShim.Interceptor", ["env", "--cache", cache], timeout: TimeSpan.FromMinutes(5));
            Assert.That(exit, Is.Zero, stderr);
            var env = exports.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l["export ".Length..].Split('=', 2))
                .ToDictionary(kv => kv[0], kv => kv[1].Trim('\''));
            env["SOCKSHIM_EAGER_HOOKS"] = "1";
            string record = SockShim.Interceptor.Contract.HookContract.WovenRecordVariable(Environment.Version.ToString());
            Assert.That(env, Does.ContainKey(record), exports);
            string woven = env[record].Split(':', 4)[3];

            var (before, _, beforeErr) = Programs.Run("LegacyApp", [], env);
            Assert.That(before, Is.EqualTo(2), "LegacyApp's usage error: the hook let the checked copy run. " + beforeErr);

            var bytes = File.ReadAllBytes(woven);
            bytes[bytes.Length / 2] ^= 0xFF;
            File.WriteAllBytes(woven, bytes);
            var (changed, _, changedErr) = Programs.Run("LegacyApp", [], env);
            Assert.That(changed, Is.EqualTo(97), changedErr);
            Assert.That(changedErr, Does.Contain($"the woven System.Net.Sockets {woven} has changed since the launcher checked it").And.Contain("sockshim run"));

            var (rerun, _, rerunErr) = Programs.Run("SockShim.Interceptor", ["run", "--cache", cache, "--", "dotnet", Programs.PathOf("LegacyApp")], timeout: TimeSpan.FromMinutes(5));
            Assert.That(rerun, Is.EqualTo(2), "LegacyApp's usage error, on a fresh copy: " + rerunErr);
            Assert.That(rerunErr, Does.Contain($"the cached {woven} is not what was woven").And.Contain("woven again"));
            string recorded = File.ReadAllLines(woven + ".ok").Single(l => l.StartsWith("sha256 "))[7..];
            Assert.That(Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(woven))).ToLowerInvariant(), Is.EqualTo(recorded), "the copy in place is the one recorded");

            env.Remove(record);
            var (unrecorded, _, unrecordedErr) = Programs.Run("LegacyApp", [], env);
            Assert.That(unrecorded, Is.EqualTo(97), unrecordedErr);
            Assert.That(unrecordedErr, Does.Contain($"without the launcher's record of the copy it checked ({record})"));
        }
        finally { RemoveDirectories(cache); }
    }

    /// <summary>Attack 3, the tool: root never loads hooks into its apps from files another
    /// account can change. A copy of the tool in which one assembly is the attacker's is refused
    /// before anything runs; so is the `sockshim` script in a clone the attacker owns, before it
    /// builds anything there.</summary>
    [Test]
    public void As_root_a_tool_another_account_can_change_is_refused()
    {
        string tool = $"/dev/shm/sockshim-test-tool-{_id}";
        string clone = $"/dev/shm/sockshim-test-clone-{_id}";
        string ran = $"/dev/shm/sockshim-test-ran-{_id}";
        try
        {
            Directory.CreateDirectory(tool);
            TwoHosts.Run("cp", ["-a", AppContext.BaseDirectory + "/.", tool]);
            string hooks = Path.Combine(tool, "SockShim.Hooks.dll");
            TwoHosts.Run("chown", [_user, hooks]);
            var (exit, stdout, stderr) = Run("dotnet", [Path.Combine(tool, "SockShim.Interceptor.dll"), "run", "--", "sh", "-c", $"touch {ran}"]);
            Assert.That(exit, Is.EqualTo(2), stdout + stderr);
            Assert.That(stderr, Does.Contain($"tool directory {tool}: {hooks} is owned by uid {_uid} ({_user})").And.Contain("install SockShim as root").And.Not.Contain("   at "));
            Assert.That(File.Exists(ran), Is.False, "the command never ran");

            var (made, output) = AsAttacker($"mkdir -m 755 {clone}");
            Assert.That(made, Is.Zero, output);
            File.Copy(Path.Combine(RepoPaths.Root, "sockshim"), Path.Combine(clone, "sockshim"));
            TwoHosts.Run("chown", [_user, Path.Combine(clone, "sockshim")]);
            var (script, scriptOut, scriptErr) = Run("bash", [Path.Combine(clone, "sockshim"), "run", "--", "sh", "-c", $"touch {ran}"]);
            Assert.That(script, Is.EqualTo(2), scriptOut + scriptErr);
            Assert.That(scriptErr, Does.Contain($"sockshim: {clone} is owned by uid {_uid}").And.Contain("clone it as root"));
            Assert.That(Directory.Exists(Path.Combine(clone, ".artifacts")), Is.False, "nothing was built in the attacker's clone");
            Assert.That(File.Exists(ran), Is.False);
        }
        finally
        {
            if (Directory.Exists(tool)) Directory.Delete(tool, true);
            if (Directory.Exists(clone)) Directory.Delete(clone, true);
            if (File.Exists(ran)) File.Delete(ran);
        }
    }

    /// <summary>Attack 3 through the native launcher: a built clone (root's) in which one file
    /// beside the launcher is the attacker's, a file that is not an assembly (the tool's deps
    /// file says what the managed tool loads), is refused by the launcher before the command or
    /// the managed tool runs; a launcher binary the attacker owns is refused by the script before
    /// it is exec'd.</summary>
    [Test]
    [CancelAfter(600_000)]
    public void As_root_the_native_launcher_runs_nothing_beside_it_that_another_account_owns()
    {
        string clone = $"/dev/shm/sockshim-test-builtclone-{_id}";
        string ran = $"/dev/shm/sockshim-test-ran-{_id}";
        try
        {
            CopyBuiltClone(clone);
            var fine = Run("bash", [Path.Combine(clone, "sockshim"), "run", "--", "sh", "-c", $"touch {ran}"]);
            Assert.That(fine.Exit, Is.Zero, fine.Out + fine.Err);
            Assert.That(File.Exists(ran), Is.True, "the copy as root built it runs commands");
            File.Delete(ran);

            string deps = Path.Combine(clone, ".artifacts", "sockshim", "SockShim.Interceptor.deps.json");
            TwoHosts.Run("chown", [_user, deps]);
            foreach (var verb in new[] { new[] { "run", "--", "sh", "-c", $"touch {ran}" }, new[] { "status" } })
            {
                var (exit, stdout, stderr) = Run("bash", [Path.Combine(clone, "sockshim"), .. verb]);
                Assert.That(exit, Is.EqualTo(2), $"{verb[0]}: {stdout}{stderr}");
                Assert.That(stderr, Does.Contain($"{deps} is owned by uid {_uid} ({_user})").And.Not.Contain("   at "), verb[0]);
                Assert.That(File.Exists(ran), Is.False, "the command never ran");
            }
            TwoHosts.Run("chown", ["root", deps]);

            // Run by bash, and by its own #! line (its first part then runs in /bin/sh: dash).
            string launcher = Path.Combine(clone, ".artifacts", "sockshim", "sockshim");
            TwoHosts.Run("chown", [_user, launcher]);
            foreach (var (file, args) in new[] { ("bash", new[] { Path.Combine(clone, "sockshim") }), (Path.Combine(clone, "sockshim"), Array.Empty<string>()) })
            {
                var refused = Run(file, [.. args, "run", "--", "sh", "-c", $"touch {ran}"]);
                Assert.That(refused.Exit, Is.EqualTo(2), file + ": " + refused.Out + refused.Err);
                Assert.That(refused.Err, Does.Contain($"sockshim: {launcher} is owned by uid {_uid}").And.Contain("clone it as root"), file);
                Assert.That(File.Exists(ran), Is.False, $"{file}: the launcher was not exec'd");
            }
            TwoHosts.Run("chown", ["root", launcher]);
            // A directory above the clone another account may write, by the #! line as well.
            File.SetUnixFileMode(clone, (UnixFileMode)0b111_111_111);
            var open = Run(Path.Combine(clone, "sockshim"), ["run", "--", "sh", "-c", $"touch {ran}"]);
            Assert.That(open.Exit, Is.EqualTo(2), open.Out + open.Err);
            Assert.That(open.Err, Does.Contain($"sockshim: {clone} is writable by other accounts (mode 777)"));
            Assert.That(File.Exists(ran), Is.False, "the launcher was not exec'd");
        }
        finally
        {
            if (Directory.Exists(clone)) Directory.Delete(clone, true);
            if (File.Exists(ran)) File.Delete(ran);
        }
    }

    /// <summary>The attacker review: root's environment (sudo -E) may carry another account's
    /// startup hook or profiler. SockShim's managed tool, started by the native launcher or (with
    /// no launcher built) by the clone's script, must not load it: both hand such variables over
    /// under another name and the tool gives them back to the app it starts. The hook and the
    /// OpenSSL module named here do not exist, so a tool that loaded either would fail; the host's
    /// trace file would be written; `env` shows the hook handed back (after SockShim's own, as
    /// for any app). (A missing profiler and the runtime's pipes leave nothing to see after the
    /// tool exits: CallerVariablesTests checks what the tool is started with.)</summary>
    [TestCase("native launcher")]
    [TestCase("script")]
    [CancelAfter(600_000)]
    public void As_root_the_managed_tool_never_starts_with_the_callers_startup_hooks_or_profiler(string via)
    {
        string clone = $"/dev/shm/sockshim-test-callerenv-{_id}";
        string cache = $"/dev/shm/sockshim-test-callerenvcache-{_id}";
        string hook = $"/dev/shm/sockshim-test-callerenv-hook-{_id}/Planted.dll";
        try
        {
            CopyBuiltClone(clone, via);
            // OpenSSL's configuration naming a module that is not there (a real one would run in
            // root's process: the second review), the host's trace file, the runtime's pipes.
            string planted = Path.GetDirectoryName(hook)!;
            Directory.CreateDirectory(Path.Combine(planted, "tmp"));
            File.WriteAllText(Path.Combine(planted, "openssl.cnf"),
                $"openssl_conf = init\n[init]\nproviders = prov\n[prov]\nplanted = planted_sect\n[planted_sect]\nmodule = {planted}/planted-provider.so\nactivate = 1\n");
            var hostile = new Dictionary<string, string>
            {
                ["DOTNET_STARTUP_HOOKS"] = hook,
                ["CORECLR_ENABLE_PROFILING"] = "1",
                ["CORECLR_PROFILER"] = "{A0B1C2D3-0000-0000-0000-000000000001}",
                ["CORECLR_PROFILER_PATH"] = hook + ".so",
                ["OPENSSL_CONF"] = Path.Combine(planted, "openssl.cnf"),
                ["COREHOST_TRACE"] = "1",
                ["COREHOST_TRACEFILE"] = Path.Combine(planted, "host-trace"),
                ["TMPDIR"] = Path.Combine(planted, "tmp"),
                // Set under the hand-over's own prefix by the caller (past sudo's removal of LD_*):
                // never put back.
                ["SOCKSHIM_CALLER_DOTNET_ADDITIONAL_DEPS"] = Path.Combine(planted, "stray-deps"),
            };
            var (exit, stdout, stderr) = Run("bash", [Path.Combine(clone, "sockshim"), "env", "--cache", cache], hostile);
            Assert.That(exit, Is.Zero, "the tool started without the caller's hook, profiler and OpenSSL configuration: " + stdout + stderr);
            Assert.That(stderr, Does.Not.Contain("Startup hook").And.Not.Contain(hook));
            Assert.That(stdout, Does.Contain("export DOTNET_STARTUP_HOOKS='").And.Contain($":{hook}'"), "handed back for the app: " + stdout);
            Assert.That(File.Exists(Path.Combine(planted, "host-trace")), Is.False, "no host trace written where the caller said");
            Assert.That(stdout, Does.Not.Contain("stray-deps"), "a variable the caller set under SOCKSHIM_CALLER_ is not put back");
        }
        finally
        {
            if (Directory.Exists(clone)) Directory.Delete(clone, true);
            if (Directory.Exists(cache)) Directory.Delete(cache, true);
            if (Directory.Exists(Path.GetDirectoryName(hook))) Directory.Delete(Path.GetDirectoryName(hook)!, true);
        }
    }

    /// <summary>The eighth attacker review: with no CORE_SERVICING naming a directory that is there,
    /// the .NET host looks for serviced package assets under `opt/coreservicing` relative to the
    /// working directory, before the app's own folder. Root running SockShim's managed tool from a
    /// directory another account can write loaded that account's file as its System.CommandLine
    /// (a file of garbage here: the old tool died, "Failed to create CoreCLR"; a real assembly
    /// would have run as root). The tool starts with CORE_SERVICING naming its own directory, by
    /// the native launcher's hand-over and by the script; the caller's own is kept for the app.</summary>
    [TestCase("native launcher")]
    [TestCase("script")]
    [CancelAfter(600_000)]
    public void As_root_the_managed_tool_loads_nothing_from_the_working_directorys_servicing_folder(string via)
    {
        string clone = $"/dev/shm/sockshim-test-servicing-{_id}";
        string cache = $"/dev/shm/sockshim-test-servicingcache-{_id}";
        string shared = $"/dev/shm/sockshim-test-servicingcwd-{_id}";
        string crumbs = $"/dev/shm/sockshim-test-rootonly-{_id}";
        try
        {
            CopyBuiltClone(clone, via);
            // Where the host would look for the tool's System.CommandLine, by the tool's deps file.
            var deps = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(clone, ".artifacts", "sockshim", "SockShim.Interceptor.deps.json")))!;
            var (library, entry) = deps["targets"]!.AsObject().SelectMany(t => t.Value!.AsObject()).First(l => l.Key.StartsWith("System.CommandLine/") && l.Value?["runtime"] is not null);
            string asset = entry!["runtime"]!.AsObject().First().Key;
            string path = deps["libraries"]![library]!["path"]!.GetValue<string>();
            Assert.That(deps["libraries"]![library]!["serviceable"]!.GetValue<bool>(), Is.True, "a package the host would look for in a servicing folder");
            string planted = $"{shared}/opt/coreservicing/pkgs/{path}/{asset}";
            // And for an app root starts from there, the framework's own System.Private.CoreLib
            // (its package is serviceable too: the ninth review).
            var framework = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(Path.GetDirectoryName(typeof(object).Assembly.Location)!, "Microsoft.NETCore.App.deps.json")))!;
            string runtimePack = framework["libraries"]!.AsObject().Single().Value!["path"]!.GetValue<string>();
            string coreLib = $"{shared}/opt/coreservicing/pkgs/{runtimePack}/System.Private.CoreLib.dll";
            // The ninth review: the host writes a breadcrumb file for each serviceable package under
            // opt/corebreadcrumbs, a link followed: root made 50 files where the link led.
            Directory.CreateDirectory(crumbs);
            var (made, output) = AsAttacker($"mkdir -m 777 {shared} && mkdir -p {Path.GetDirectoryName(planted)} {Path.GetDirectoryName(coreLib)} && echo planted > {planted} && echo planted > {coreLib} && ln -s {crumbs} {shared}/opt/corebreadcrumbs");
            Assert.That(made, Is.Zero, output);

            var (exit, stdout, stderr) = Run("bash", [Path.Combine(clone, "sockshim"), "env", "--cache", cache], cwd: shared);
            Assert.That(exit, Is.Zero, "the tool started with its own System.CommandLine: " + stdout + stderr);
            Assert.That(stderr, Does.Not.Contain("CoreCLR"));
            var (appExit, appOut, appErr) = Run("bash", [Path.Combine(clone, "sockshim"), "run", "--", "dotnet", Programs.PathOf("LegacyApp"), "--start"], cwd: shared);
            Assert.That(appExit, Is.Zero, "root's app started with the framework's own System.Private.CoreLib: " + appOut + appErr);
            Assert.That(Directory.EnumerateFileSystemEntries(crumbs), Is.Empty, "nothing written where the link led");
        }
        finally
        {
            RemoveDirectories(clone, cache, shared, crumbs);
        }
    }

    /// <summary>The second attacker review: root's PATH naming the attacker's `dotnet` first (where
    /// sudo keeps PATH) had root run it with the managed tool. The launcher, as root, starts the
    /// tool only with a `dotnet` root owns alone, and says so otherwise (exit 2).</summary>
    [Test]
    [CancelAfter(300_000)]
    public void As_root_the_native_launcher_starts_its_tool_only_with_a_dotnet_root_owns()
    {
        string clone = $"/dev/shm/sockshim-test-pathdotnet-{_id}";
        string bin = $"/dev/shm/sockshim-test-pathbin-{_id}";
        try
        {
            CopyBuiltClone(clone);
            var (made, output) = AsAttacker($"mkdir -m 755 {bin} && printf '#!/bin/sh\\ntouch {bin}/ran\\n' > {bin}/dotnet && chmod 755 {bin}/dotnet");
            Assert.That(made, Is.Zero, output);
            var (exit, stdout, stderr) = Run("bash", [Path.Combine(clone, "sockshim"), "status"],
                new Dictionary<string, string> { ["PATH"] = $"{bin}:{Environment.GetEnvironmentVariable("PATH")}" });
            Assert.That(exit, Is.EqualTo(2), stdout + stderr);
            Assert.That(stderr, Does.Contain($"{bin} is owned by uid {_uid} ({_user})").And.Contain("put root's .NET installation first on PATH").And.Not.Contain("   at "));
            Assert.That(File.Exists($"{bin}/ran"), Is.False, "the attacker's dotnet never ran");
        }
        finally { RemoveDirectories(clone, bin); }
    }

    /// <summary>A root-owned directory on root's PATH may hold a link to another account's
    /// `dotnet` (an installation in a home directory, linked from /usr/local/bin): what runs is the
    /// link's target. Neither the launcher (handing `status` to its managed tool) nor the clone's
    /// script (its fallback with no launcher built) ever runs it: refused by the target's owner,
    /// exit 2, one line.</summary>
    [TestCase("native launcher")]
    [TestCase("script")]
    [CancelAfter(300_000)]
    public void As_root_a_dotnet_that_roots_link_leads_to_another_accounts_file_never_runs(string via)
    {
        string clone = $"/dev/shm/sockshim-test-dotnetlink-{_id}";
        string bin = $"/dev/shm/sockshim-test-dotnetlinkbin-{_id}";
        string theirs = $"/dev/shm/sockshim-test-dotnetlinkdir-{_id}";
        try
        {
            CopyBuiltClone(clone, via);
            var (made, output) = AsAttacker($"mkdir -m 755 {theirs} && printf '#!/bin/sh\\ntouch {theirs}/ran\\n' > {theirs}/dotnet && chmod 755 {theirs}/dotnet");
            Assert.That(made, Is.Zero, output);
            Directory.CreateDirectory(bin); // root's, 0755
            File.CreateSymbolicLink(Path.Combine(bin, "dotnet"), Path.Combine(theirs, "dotnet"));
            var (exit, stdout, stderr) = Run("/bin/bash", [Path.Combine(clone, "sockshim"), "status"],
                new Dictionary<string, string> { ["PATH"] = $"{bin}:{Environment.GetEnvironmentVariable("PATH")}" });
            Assert.That(exit, Is.EqualTo(2), stdout + stderr);
            Assert.That(stderr, Does.Contain($"{theirs} is owned by uid {_uid}").And.Contain("put root's .NET installation first on PATH").And.Not.Contain("   at "));
            Assert.That(stderr.Trim().Split('\n'), Has.Length.EqualTo(1), stderr);
            Assert.That(File.Exists($"{theirs}/ran"), Is.False, "the attacker's dotnet never ran");
        }
        finally { RemoveDirectories(clone, bin, theirs); }
    }

    /// <summary>The fourth review: a root-owned .NET installation may hold another account's
    /// folder; its `dotnet` is root's alone, but the muxer loads host/fxr/HIGHEST/libhostfxr.so
    /// from it (here the other account's, whose constructor writes a file), so root ran that
    /// account's code, through the launcher handing `status` to its managed tool and through the
    /// clone's script (its fallback, and a build). Both refuse such an installation, naming the
    /// folder, exit 2, and nothing of it runs.</summary>
    [TestCase("native launcher")]
    [TestCase("script")]
    [CancelAfter(300_000)]
    public void As_root_a_dotnet_whose_installation_holds_another_accounts_folder_never_runs(string via)
    {
        string clone = $"/dev/shm/sockshim-test-fxr-{_id}";
        string install = $"/dev/shm/sockshim-test-fxrdotnet-{_id}";
        string marker = $"/dev/shm/sockshim-test-fxrran-{_id}";
        try
        {
            CopyBuiltClone(clone, via);
            Directory.CreateDirectory(install); // root's, 0755
            string real = Path.Combine(Path.GetFullPath(Path.Combine(Path.GetDirectoryName(typeof(object).Assembly.Location)!, "..", "..", "..")), "dotnet");
            File.Copy(real, Path.Combine(install, "dotnet"));
            File.WriteAllText(Path.Combine(install, "fxr.c"), $$"""
                #include <stdio.h>
                #include <unistd.h>
                __attribute__((constructor)) static void ran(void) { FILE *f = fopen("{{marker}}", "w"); if (f) { fprintf(f, "%d\n", (int)geteuid()); fclose(f); } }
                """);
            TwoHosts.Run("gcc", ["-shared", "-fPIC", "-o", Path.Combine(install, "fxr.so"), Path.Combine(install, "fxr.c")]);
            Directory.CreateDirectory(Path.Combine(install, "host"));
            TwoHosts.Run("chown", [_user, Path.Combine(install, "host")]);
            var (made, output) = AsAttacker($"mkdir -p {install}/host/fxr/99.0.0 && cp {install}/fxr.so {install}/host/fxr/99.0.0/libhostfxr.so");
            Assert.That(made, Is.Zero, output);
            var (exit, stdout, stderr) = Run("/bin/bash", [Path.Combine(clone, "sockshim"), "status"],
                new Dictionary<string, string> { ["PATH"] = $"{install}:{Environment.GetEnvironmentVariable("PATH")}" });
            Assert.That(exit, Is.EqualTo(2), stdout + stderr);
            Assert.That(stderr, Does.Contain($"{install}/host").And.Contain($"uid {_uid}").And.Contain("put root's .NET installation first on PATH").And.Not.Contain("   at "));
            Assert.That(stderr.Trim().Split('\n'), Has.Length.EqualTo(1), stderr);
            Assert.That(File.Exists(marker), Is.False, "the other account's libhostfxr.so never ran");
        }
        finally
        {
            RemoveDirectories(clone, install);
            File.Delete(marker);
        }
    }

    /// <summary>Root's PATH may carry another account's directory (`sudo env PATH=$PATH`). The
    /// clone's script runs its own tools (stat, find, readlink, env, ...) from the system's
    /// standard PATH, and builds with only the entries of PATH no other account can change, so
    /// neither the attacker's `stat` nor its `dotnet`, nor the `gcc`/`clang` the native build
    /// links with, ever runs as root: at a build and at a launch.</summary>
    [Test]
    [CancelAfter(400_000)]
    public void As_root_the_script_never_runs_a_tool_from_another_accounts_directory_on_path()
    {
        string clone = $"/dev/shm/sockshim-test-pathclone-{_id}";
        string bin = $"/dev/shm/sockshim-test-pathtools-{_id}";
        try
        {
            TwoHosts.Run("git", ["clone", "-q", RepoPaths.Root, clone]);
            string[] tools = ["bash", "stat", "find", "readlink", "env", "mkdir", "cat", "cp", "rm", "dotnet", "gcc", "clang", "cc", "ld", "objcopy", "strip"];
            var (made, output) = AsAttacker($"mkdir -m 755 {bin} && for t in {string.Join(' ', tools)}; do printf '#!/bin/sh\\ntouch {bin}/ran-$t\\nexit 1\\n' > {bin}/$t && chmod 755 {bin}/$t; done");
            Assert.That(made, Is.Zero, output);
            var path = new Dictionary<string, string> { ["PATH"] = $"{bin}:{Environment.GetEnvironmentVariable("PATH")}" };
            foreach (var what in new[] { "the build", "a launch", "a rebuild the launcher hands back to the script" })
            {
                if (what.StartsWith("a rebuild")) File.SetLastWriteTimeUtc(Path.Combine(clone, "Stack", "AddressStack.cs"), DateTime.UtcNow.AddSeconds(5));
                var (exit, stdout, stderr) = Run("/bin/bash", [Path.Combine(clone, "sockshim"), "run", "--", "/bin/true"], path);
                // Built and checked, the launcher would look for the runtimes beside the `dotnet`
                // on PATH, the attacker's: refused, nothing of it read or run.
                Assert.That(exit, Is.EqualTo(2), $"{what}: {stdout}{stderr}");
                Assert.That(stderr, Does.Contain($"{bin} is owned by uid {_uid} ({_user})").And.Contain("put root's .NET installation first on PATH"), what);
                Assert.That(File.Exists(Path.Combine(clone, ".artifacts", "sockshim", "sockshim")), Is.True, "the native launcher was built");
                Assert.That(Directory.GetFiles(bin, "ran-*").Select(Path.GetFileName), Is.Empty, $"{what}: no tool of the attacker's ran");
            }
        }
        finally { RemoveDirectories(clone, bin); }
    }

    /// <summary>With no `dotnet` on PATH the launcher, as root, says so and starts nothing (one
    /// line, exit 2), rather than leaving exec to search a PATH it has not checked.</summary>
    [Test]
    public void As_root_the_native_launcher_without_a_dotnet_on_path_says_so()
    {
        string clone = $"/dev/shm/sockshim-test-nodotnet-{_id}";
        try
        {
            CopyBuiltClone(clone);
            var (exit, stdout, stderr) = Run(Path.Combine(clone, ".artifacts", "sockshim", "sockshim"), ["status"], new() { ["PATH"] = $"/nonexistent-{_id}" });
            Assert.That(exit, Is.EqualTo(2), stdout + stderr);
            Assert.That(stderr.Trim(), Is.EqualTo("sockshim: dotnet is not found on PATH; as root SockShim starts its managed tool only with a dotnet that root owns and no other account can write, nor any directory above it: put root's .NET installation first on PATH"));
        }
        finally { RemoveDirectories(clone); }
    }

    /// <summary>The third review: the launcher starts its tool with the `dotnet` it checked, but
    /// under the name `dotnet`: a multi-call binary (snap's `dotnet` is a link to `snap`) decides
    /// what to be by the name it is run as, and exited 64 when run by its resolved path. Here a
    /// root-owned multi-call program (compiled here: a script sees its own path, not the name it
    /// was run as) stands in for it. And with no launcher built, the script's
    /// hand-over leaves bash's read-only SHELLOPTS alone (it exited 1).</summary>
    [Test]
    [CancelAfter(300_000)]
    public void As_root_the_tool_starts_under_the_name_dotnet_and_the_script_keeps_shellopts()
    {
        string clone = $"/dev/shm/sockshim-test-multicall-{_id}";
        string bin = $"/dev/shm/sockshim-test-multicallbin-{_id}";
        try
        {
            CopyBuiltClone(clone);
            Directory.CreateDirectory(bin);
            string real = Path.Combine(Path.GetFullPath(Path.Combine(Path.GetDirectoryName(typeof(object).Assembly.Location)!, "..", "..", "..")), "dotnet");
            File.WriteAllText(Path.Combine(bin, "multicall.c"), $$"""
                #include <stdio.h>
                #include <string.h>
                #include <unistd.h>
                int main(int argc, char **argv)
                {
                    const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
                    if (strcmp(name, "dotnet") == 0) { execv("{{real}}", argv); return 127; }
                    fprintf(stderr, "multicall: unknown command %s\n", name);
                    return 64;
                }
                """);
            TwoHosts.Run("gcc", ["-o", Path.Combine(bin, "multicall"), Path.Combine(bin, "multicall.c")]);
            File.CreateSymbolicLink(Path.Combine(bin, "dotnet"), "multicall");
            var env = new Dictionary<string, string> { ["PATH"] = $"{bin}:{Environment.GetEnvironmentVariable("PATH")}" };
            var (exit, stdout, stderr) = Run("bash", [Path.Combine(clone, "sockshim"), "config"], env);
            Assert.That(exit, Is.Zero, stdout + stderr);
            Assert.That(stderr, Does.Not.Contain("multicall: unknown command"));

            File.Delete(Path.Combine(clone, ".artifacts", "sockshim", "sockshim"));
            var fallback = Run("bash", [Path.Combine(clone, "sockshim"), "config"], new() { ["SHELLOPTS"] = "braceexpand:hashall:interactive-comments" });
            Assert.That(fallback.Exit, Is.Zero, fallback.Out + fallback.Err);
            Assert.That(fallback.Err, Does.Not.Contain("readonly variable"));
        }
        finally { RemoveDirectories(clone, bin); }
    }

    /// <summary>The second attacker review: a clone in a sticky directory (as under /tmp) whose
    /// parent holds another account's Directory.Packages.props (or global.json, NuGet.Config,
    /// Directory.Build.rsp), which the SDK, MSBuild and NuGet read from every directory above a
    /// project: root's ./sockshim refuses to build there, before anything runs.</summary>
    [Test]
    [CancelAfter(300_000)]
    public void As_root_the_script_never_builds_with_files_another_account_put_above_the_clone()
    {
        string sticky = $"/dev/shm/sockshim-test-sticky-{_id}";
        string clone = Path.Combine(sticky, "clone");
        try
        {
            Directory.CreateDirectory(sticky);
            File.SetUnixFileMode(sticky, (UnixFileMode)0b1_111_111_111);
            TwoHosts.Run("git", ["clone", "-q", RepoPaths.Root, clone]);
            var (made, output) = AsAttacker($"printf '<Project InitialTargets=\"P\"><Target Name=\"P\"><Exec Command=\"touch {sticky}/ran\" /></Target></Project>' > {sticky}/Directory.Packages.props");
            Assert.That(made, Is.Zero, output);
            var (exit, stdout, stderr) = Run("bash", [Path.Combine(clone, "sockshim"), "status"]);
            Assert.That(exit, Is.EqualTo(2), stdout + stderr);
            Assert.That(stderr, Does.Contain($"{sticky}/Directory.Packages.props is not root's alone, and building the tool would read it").And.Contain("clone it as root"));
            Assert.That(File.Exists($"{sticky}/ran"), Is.False, "the planted file never ran");
            Assert.That(Directory.Exists(Path.Combine(clone, ".artifacts")), Is.False, "nothing was built");

            // The third review: a file planted after that check, during the build, is not read
            // either: the clone's own global.json and Directory.Packages.props end the search, the
            // build ignores Directory.Build.rsp, and NuGet reads root's configuration alone. Here
            // the files are root's (so the check passes) and would each break or own the build.
            TwoHosts.Run("chown", ["root", $"{sticky}/Directory.Packages.props"]);
            // The fifth and sixth reviews: the compiler reads .editorconfig and .globalconfig from
            // every directory above a project, whenever during the build they appear (these make
            // every analyzer message an error: root's build failed at will). Root's build reads neither.
            var (wrote, said) = AsAttacker($"printf 'is_global = true\\ndotnet_analyzer_diagnostic.severity = error\\n' > {sticky}/.globalconfig && " +
                $"printf 'root = true\\n[*.cs]\\ndotnet_analyzer_diagnostic.severity = error\\n' > {sticky}/.editorconfig");
            Assert.That(wrote, Is.Zero, said);
            File.WriteAllText($"{sticky}/global.json", """{ "sdk": { "version": "1.0.0" } }""");
            File.WriteAllText($"{sticky}/Directory.Build.rsp", "-p:NoSuchSwitchWouldEverBuild=true -bogusswitch\n");
            File.WriteAllText($"{sticky}/NuGet.Config", """<configuration><packageSources><add key="planted" value="http://127.0.0.1:9/v3/index.json" /></packageSources></configuration>""");
            var built = Run("bash", [Path.Combine(clone, "sockshim"), "config"]);
            Assert.That(built.Exit, Is.Zero, built.Out + built.Err);
            Assert.That(File.Exists($"{sticky}/ran"), Is.False, "the Directory.Packages.props above the clone was not imported");
            Assert.That(File.Exists(Path.Combine(clone, ".artifacts", "sockshim", "SockShim.Interceptor.dll")), Is.True, "the tool was built (the other account's analyzer configuration was not read)");
        }
        finally { RemoveDirectories(sticky); }
    }

    /// <summary>Root's environment may carry another account's SOCKSHIM_* variables (sudo's
    /// env_keep for the settings). SOCKSHIM_CLONE naming that account's directory, with a source
    /// there newer than the build, must not make root's launcher run that directory's script
    /// "to rebuild": the launcher only rebuilds the clone it was built in.</summary>
    [Test]
    public void As_root_the_native_launcher_never_runs_the_script_of_a_clone_its_environment_names()
    {
        string clone = $"/dev/shm/sockshim-test-builtclone-{_id}";
        string evil = $"/dev/shm/sockshim-test-evilclone-{_id}";
        string pwned = $"/dev/shm/sockshim-test-pwned-{_id}";
        string ran = $"/dev/shm/sockshim-test-ran-{_id}";
        try
        {
            CopyBuiltClone(clone);
            var (planted, output) = AsAttacker(
                $"mkdir -p {evil}/Interceptor && touch {evil}/Interceptor/Changed.cs && " +
                $"printf '#!/bin/sh\nid -u > {pwned}\n' > {evil}/sockshim && chmod 755 {evil}/sockshim");
            Assert.That(planted, Is.Zero, output);

            string launcher = Path.Combine(clone, ".artifacts", "sockshim", "sockshim");
            var (exit, stdout, stderr) = Run(launcher, ["run", "--", "sh", "-c", $"touch {ran}"], new() { ["SOCKSHIM_CLONE"] = evil });
            Assert.That(File.Exists(pwned), Is.False, $"root ran the other account's script: {stdout}{stderr}");
            Assert.That(exit, Is.Zero, stdout + stderr);
            Assert.That(File.Exists(ran), Is.True, "the launcher ran the command itself");
        }
        finally
        {
            foreach (var d in new[] { clone, evil }) if (Directory.Exists(d)) Directory.Delete(d, true);
            foreach (var f in new[] { pwned, ran }) if (File.Exists(f)) File.Delete(f);
        }
    }

    // A root-owned copy of this clone as its script builds it (the tool, the native launcher
    // and the stamp), at <paramref name="clone"/>: what root's ./sockshim would run there.
    /// <summary>The clone's script and its built tool, copied to <paramref name="clone"/>; started
    /// <paramref name="via"/> "script", without the native launcher (the script's fallback).</summary>
    private static void CopyBuiltClone(string clone, string via = "native launcher")
    {
        string built = Path.Combine(RepoPaths.Root, ".artifacts", "sockshim");
        var prepare = Run("bash", [Path.Combine(RepoPaths.Root, "sockshim"), "prepare"]);
        Assert.That(prepare.Exit, Is.Zero, prepare.Out + prepare.Err);
        Assert.That(File.Exists(Path.Combine(built, "sockshim")), Is.True, "the clone's script built the native launcher");
        Directory.CreateDirectory(Path.Combine(clone, ".artifacts"));
        File.Copy(Path.Combine(RepoPaths.Root, "sockshim"), Path.Combine(clone, "sockshim"));
        TwoHosts.Run("cp", ["-a", built, Path.Combine(clone, ".artifacts")]);
        if (via == "script") File.Delete(Path.Combine(clone, ".artifacts", "sockshim", "sockshim"));
    }

    private static (int Exit, string Out, string Err) Run(string file, IEnumerable<string> args, Dictionary<string, string>? extra = null, string? cwd = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (cwd is not null) psi.WorkingDirectory = cwd;
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("SOCKSHIM_")).ToList()) psi.Environment.Remove(key);
        if (extra is not null) foreach (var (k, v) in extra) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(2))) { p.Kill(true); Assert.Fail($"{file} {string.Join(' ', args)} did not finish in time"); }
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr.Result);
    }
}
