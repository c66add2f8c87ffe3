using SockShim.Interceptor.Contract;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.Loader;
using Mono.Cecil;
using Mono.Cecil.Cil;
using SockShim.Interceptor.Store;
using SockShim.Interceptor.Weaving;

namespace SockShim.Tests.Interceptor;

/// <summary>The weaver against this machine's real runtime: the Cecil definitions, the woven IL
/// compiled by the JIT, and loud failures when the runtime's assembly is not what it expects.</summary>
public class WeaverTests
{
    private static readonly InstalledRuntime Runtime = InstalledRuntimes.Find().Single(r => r.Version == Environment.Version.ToString());
    private string _dir = "";
    private string _woven = "";

    [OneTimeSetUp]
    public void Weave()
    {
        _dir = Directory.CreateTempSubdirectory("sockshim-weaver-").FullName;
        _woven = Path.Combine(_dir, "System.Net.Sockets.dll");
        SocketsWeaver.Weave(Runtime.SocketsPath, _woven, Runtime.Version);
    }

    [OneTimeTearDown]
    public void Clean() => Directory.Delete(_dir, recursive: true);

    [Test]
    public void The_hook_class_has_one_delegate_slot_per_hook_and_records_its_source()
    {
        using var module = ModuleDefinition.ReadModule(_woven);
        var hooks = module.GetType(HookContract.FullTypeName);
        Assert.That(hooks, Is.Not.Null);
        Assert.That(hooks.IsPublic && hooks.IsAbstract && hooks.IsSealed, Is.True, "public static class");
        var slots = hooks.Fields.Where(f => !f.HasConstant && !f.IsInitOnly).ToDictionary(f => f.Name, f => f.FieldType.FullName);
        Assert.That(slots.Keys, Is.EquivalentTo(new[] { "MapFamily", "Created", "Binding", "Connecting", "SendingTo", "Disposed", "UsedAfterClose" }));
        // The attribute mode's flag, shared by the app's SockShim and the hooks, created by the type itself.
        var scope = hooks.Fields.Single(f => f.Name == HookContract.AddressScope);
        Assert.That((scope.IsInitOnly, scope.FieldType.FullName), Is.EqualTo((true, "System.Threading.AsyncLocal`1<System.Boolean>")));
        Assert.That(scope.FieldType.Scope.Name, Is.EqualTo("System.Threading"), "the contract that forwards AsyncLocal (System.Runtime does not)");
        Assert.That(hooks.Methods.Single(m => m.Name == ".cctor").Body.Instructions.Any(i => i.OpCode == Mono.Cecil.Cil.OpCodes.Stsfld && i.Operand == scope), Is.True);
        Assert.That(slots["Binding"], Is.EqualTo("System.Func`3<System.Net.Sockets.Socket,System.Net.EndPoint,System.Net.EndPoint>"));
        Assert.That(slots["SendingTo"], Is.EqualTo("System.Action`2<System.Net.Sockets.Socket,System.Object>"));
        // The slots are the contract's methods; Shim finds the scope flag by the contract's names.
        Assert.That(slots.Keys, Is.EquivalentTo(HookContract.Slots.Select(m => m.Name)));
        Assert.That((SockShim.AddressScope.WovenType, SockShim.AddressScope.WovenField), Is.EqualTo((HookContract.FullTypeName, HookContract.AddressScope)));
        Assert.That(hooks.Fields.Single(f => f.Name == HookContract.SourceRuntimeVersion).Constant, Is.EqualTo(Runtime.Version));
        Assert.That(hooks.Fields.Single(f => f.Name == HookContract.SourceMvid).Constant, Is.EqualTo(Runtime.SocketsMvid.ToString()));
        Assert.That(module.Mvid, Is.Not.EqualTo(Runtime.SocketsMvid), "a new MVID");
        Assert.That(module.Assembly.Name.Version, Is.EqualTo(new Version(10, 0, 0, 0)));
        Assert.That(module.Assembly.Name.PublicKeyToken, Is.Not.Empty, "same identity as the framework's");
    }

    [TestCase("Socket::.ctor(System.Net.Sockets.AddressFamily,System.Net.Sockets.SocketType,System.Net.Sockets.ProtocolType)", "MapFamily", "Created", "AddressScope")]
    [TestCase("Socket::Bind(System.Net.EndPoint)", "Binding")]
    [TestCase("Socket::DoConnect(System.Net.EndPoint,System.Net.SocketAddress)", "Connecting")]
    [TestCase("Socket::ConnectAsync(System.Net.Sockets.SocketAsyncEventArgs,System.Boolean,System.Boolean,System.Threading.CancellationToken)", "Connecting")]
    [TestCase("Socket::SendTo(System.Byte[],System.Int32,System.Int32,System.Net.Sockets.SocketFlags,System.Net.EndPoint)", "SendingTo")]
    [TestCase("Socket::SendTo(System.ReadOnlySpan`1<System.Byte>,System.Net.Sockets.SocketFlags,System.Net.SocketAddress)", "SendingTo")]
    [TestCase("Socket::SendToAsync(System.Net.Sockets.SocketAsyncEventArgs,System.Threading.CancellationToken)", "SendingTo")]
    [TestCase("Socket::Dispose(System.Boolean)", "Disposed")]
    [TestCase("Socket::ThrowIfDisposed()", "UsedAfterClose")]
    [TestCase("Socket::UpdateStatusAfterSocketErrorAndThrowException(System.Net.Sockets.SocketError,System.Boolean,System.String)", "UsedAfterClose")]
    public void Each_funnel_point_reads_its_slot(string method, params string[] slots)
    {
        using var module = ModuleDefinition.ReadModule(_woven);
        var m = module.GetType("System.Net.Sockets.Socket").Methods.Single(x => x.FullName.EndsWith(method));
        var read = m.Body.Instructions.Where(i => i.OpCode == OpCodes.Ldsfld && i.Operand is FieldReference f && f.DeclaringType.Name == HookContract.TypeName)
            .Select(i => ((FieldReference)i.Operand).Name).Distinct();
        Assert.That(read, Is.EquivalentTo(slots));
    }

    /// <summary>The uses of a socket that may need SockShim wire it (call SockShimWiring.Ensure,
    /// whose static constructor does the wiring) when nothing has filled the slots; a Dispose or a
    /// use after close never does: a socket SockShim never saw needs nothing of it.</summary>
    [TestCase("Socket::.ctor(System.Net.Sockets.AddressFamily,System.Net.Sockets.SocketType,System.Net.Sockets.ProtocolType)", true)]
    [TestCase("Socket::Bind(System.Net.EndPoint)", true)]
    [TestCase("Socket::DoConnect(System.Net.EndPoint,System.Net.SocketAddress)", true)]
    [TestCase("Socket::ConnectAsync(System.Net.Sockets.SocketAsyncEventArgs,System.Boolean,System.Boolean,System.Threading.CancellationToken)", true)]
    [TestCase("Socket::SendTo(System.Byte[],System.Int32,System.Int32,System.Net.Sockets.SocketFlags,System.Net.EndPoint)", true)]
    [TestCase("Socket::SendTo(System.ReadOnlySpan`1<System.Byte>,System.Net.Sockets.SocketFlags,System.Net.SocketAddress)", true)]
    [TestCase("Socket::SendToAsync(System.Net.Sockets.SocketAsyncEventArgs,System.Threading.CancellationToken)", true)]
    [TestCase("Socket::Dispose(System.Boolean)", false)]
    [TestCase("Socket::ThrowIfDisposed()", false)]
    [TestCase("Socket::UpdateStatusAfterSocketErrorAndThrowException(System.Net.Sockets.SocketError,System.Boolean,System.String)", false)]
    public void Only_a_use_that_may_need_sockshim_wires_it(string method, bool wires)
    {
        using var module = ModuleDefinition.ReadModule(_woven);
        var m = module.GetType("System.Net.Sockets.Socket").Methods.Single(x => x.FullName.EndsWith(method));
        bool callsEnsure = m.Body.Instructions.Any(i => i.OpCode == OpCodes.Call && i.Operand is MethodReference r
            && r.DeclaringType.Name == HookContract.WiringTypeName && r.Name == HookContract.WiringMethodName);
        Assert.That(callsEnsure, Is.EqualTo(wires));
        var wiring = module.GetType(HookContract.TypeNamespace, HookContract.WiringTypeName);
        Assert.That(wiring.IsBeforeFieldInit, Is.False, "Ensure's first call must run the static constructor");
        Assert.That(wiring.Methods.Single(x => x.Name == ".cctor").Body.Instructions.Any(i => i.OpCode == OpCodes.Ldstr && (string)i.Operand == HookContract.WireVariable),
            Is.True, "the wiring reads SOCKSHIM_WIRE in that constructor");
        Assert.That(module.GetType(HookContract.FullTypeName).Methods.Single(x => x.Name == ".cctor").Body.Instructions.Any(i => i.OpCode == OpCodes.Ldstr),
            Is.False, "the slots' own type wires nothing: reading a slot or the scope never loads SockShim");
    }

    /// <summary>The wiring stores each slot only where it is still empty (Interlocked.CompareExchange
    /// with null): a thread that read an early slot may have loaded the hooks, which fill every
    /// slot, before the wiring ends; a trampoline stored over a real handler would call itself
    /// forever (found by review: a thread spinning at 100% CPU).</summary>
    [Test]
    public void The_wiring_fills_only_empty_slots()
    {
        using var module = ModuleDefinition.ReadModule(_woven);
        var hooks = module.GetType(HookContract.FullTypeName);
        var wiring = module.GetType(HookContract.TypeNamespace, HookContract.WiringTypeName).Methods.Single(x => x.Name == ".cctor").Body.Instructions;
        var slots = hooks.Fields.Where(f => HookContract.SlotNames.Contains(f.Name)).ToList();
        Assert.That(wiring.Where(i => i.OpCode == OpCodes.Stsfld && i.Operand is FieldReference f && f.DeclaringType.Name == HookContract.TypeName), Is.Empty, "no plain store into a slot");
        var exchanged = wiring.Where(i => i.OpCode == OpCodes.Ldsflda && i.Operand is FieldReference).Select(i => ((FieldReference)i.Operand).Name).ToList();
        Assert.That(exchanged, Is.EquivalentTo(HookContract.SlotNames), "every slot's address is taken once");
        foreach (var load in wiring.Where(i => i.OpCode == OpCodes.Ldsflda))
        {
            var call = load.Next;
            while (call.OpCode != OpCodes.Call) call = call.Next;
            Assert.That(call.Operand is GenericInstanceMethod { Name: "CompareExchange" } m && m.DeclaringType.FullName == "System.Threading.Interlocked", Is.True, $"{load.Operand} goes through {call.Operand}");
            Assert.That(call.Previous.OpCode, Is.EqualTo(OpCodes.Ldnull), "compared with null: only an empty slot is filled");
        }
    }

    /// <summary>In the constructor, a socket made in a [NewAddressPerSocket] flow wires SockShim:
    /// the scope's value branches to the Ensure call (a review found a mutant that read the scope and
    /// dropped it passing every other test; the attribute example connects first).</summary>
    [Test]
    public void A_socket_created_in_a_marked_flow_wires_sockshim()
    {
        using var module = ModuleDefinition.ReadModule(_woven);
        var ctor = module.GetType("System.Net.Sockets.Socket").Methods.Single(x => x.FullName.EndsWith("Socket::.ctor(System.Net.Sockets.AddressFamily,System.Net.Sockets.SocketType,System.Net.Sockets.ProtocolType)"));
        var scopeReads = ctor.Body.Instructions.Where(i => i.OpCode == OpCodes.Callvirt && i.Operand is MethodReference { Name: "get_Value" } r && r.DeclaringType.Name.StartsWith("AsyncLocal")).ToList();
        Assert.That(scopeReads, Is.Not.Empty);
        foreach (var read in scopeReads)
        {
            Assert.That(read.Next.OpCode, Is.EqualTo(OpCodes.Brtrue), "the scope's value decides");
            var target = (Instruction)read.Next.Operand;
            Assert.That(target.OpCode == OpCodes.Call && target.Operand is MethodReference { Name: HookContract.WiringMethodName } e && e.DeclaringType.Name == HookContract.WiringTypeName,
                Is.True, $"a true scope goes to the wiring, not to {target}");
        }
    }

    /// <summary>The source's length and time are stamped from the file its path leads to, as the
    /// app's check stats it (links followed): a runtime whose System.Net.Sockets.dll is a link
    /// (a Nix-style or `cp -s` installation) was refused at every start, found by review.</summary>
    [Test]
    public void A_linked_source_is_stamped_with_the_file_it_leads_to()
    {
        string link = Path.Combine(_dir, "linked", "System.Net.Sockets.dll");
        Directory.CreateDirectory(Path.GetDirectoryName(link)!);
        File.CreateSymbolicLink(link, Runtime.SocketsPath);
        string woven = Path.Combine(_dir, "linked-woven.dll");
        SocketsWeaver.Weave(link, woven, Runtime.Version);
        using var module = ModuleDefinition.ReadModule(woven);
        var hooks = module.GetType(HookContract.FullTypeName);
        var target = new FileInfo(Runtime.SocketsPath);
        Assert.That(new FileInfo(link).Length, Is.Not.EqualTo(target.Length), "a link's own length is its target's name");
        Assert.That(hooks.Fields.Single(f => f.Name == HookContract.SourceFileLength).Constant, Is.EqualTo(target.Length.ToString()));
        Assert.That(hooks.Fields.Single(f => f.Name == HookContract.SourceFileTime).Constant, Is.EqualTo(target.LastWriteTimeUtc.Ticks.ToString()));
        Assert.That(new InstalledRuntime(Runtime.Version, Path.GetDirectoryName(link)!).SourceStamp, Is.EqualTo(Runtime.SourceStamp), "the cache key of a linked runtime is its target's");
    }

    [Test]
    public void The_async_connect_hook_runs_after_ValidateForMultiConnect()
    {
        using var module = ModuleDefinition.ReadModule(_woven);
        var m = module.GetType("System.Net.Sockets.Socket").Methods.Single(x => x.Name == "ConnectAsync" && x.Parameters.Count == 4);
        var list = m.Body.Instructions.ToList();
        int validate = list.FindIndex(i => i.Operand is MethodReference r && r.Name == "ValidateForMultiConnect");
        int hook = list.FindIndex(i => i.Operand is FieldReference f && f.Name == "Connecting");
        Assert.That(validate, Is.GreaterThanOrEqualTo(0));
        Assert.That(hook, Is.EqualTo(validate + 1));
    }

    [Test]
    public void Every_method_of_the_woven_assembly_compiles()
    {
        // PEVerify does not run on Linux: let the JIT judge the IL instead, in a context of its own.
        var alc = new AssemblyLoadContext("woven-check", isCollectible: true);
        try
        {
            var assembly = alc.LoadFromAssemblyPath(_woven);
            var socket = assembly.GetType("System.Net.Sockets.Socket")!;
            Assert.That(assembly.GetType(HookContract.FullTypeName), Is.Not.Null);
            int prepared = 0;
            foreach (var m in socket.GetMethods(BindingFlags.Instance | BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly)
                         .Cast<MethodBase>().Concat(socket.GetConstructors(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic)))
            {
                if (m.IsAbstract || m.ContainsGenericParameters) continue;
                RuntimeHelpers.PrepareMethod(m.MethodHandle);
                prepared++;
            }
            Assert.That(prepared, Is.GreaterThan(100));
        }
        finally { alc.Unload(); }
    }

    [Test]
    public void A_missing_funnel_point_stops_weaving_and_names_the_method()
    {
        string broken = Path.Combine(_dir, "broken", "System.Net.Sockets.dll");
        Directory.CreateDirectory(Path.GetDirectoryName(broken)!);
        using (var module = ModuleDefinition.ReadModule(Runtime.SocketsPath, new ReaderParameters { InMemory = true }))
        {
            var socket = module.GetType("System.Net.Sockets.Socket");
            // As if a new runtime had renamed the funnel point.
            socket.Methods.Single(m => m.Name == "DoConnect").Name = "DoConnectCore";
            module.Attributes = (module.Attributes & ~(ModuleAttributes.ILLibrary | ModuleAttributes.StrongNameSigned)) | ModuleAttributes.ILOnly;
            module.Architecture = TargetArchitecture.I386;
            module.Write(broken);
        }
        var ex = Assert.Throws<WeaveException>(() => SocketsWeaver.Weave(broken, broken + ".out", Runtime.Version))!;
        Assert.That(ex.Message, Does.Contain("Socket.DoConnect(EndPoint, SocketAddress)").And.Contain("missing"));
        Assert.That(File.Exists(broken + ".out"), Is.False, "nothing half-woven is written");
    }

    [Test]
    public void A_woven_assembly_is_not_woven_twice()
    {
        var ex = Assert.Throws<WeaveException>(() => SocketsWeaver.Weave(_woven, _woven + ".twice", Runtime.Version))!;
        Assert.That(ex.Message, Does.Contain("already woven"));
    }

    [Test]
    public void The_store_caches_by_runtime_and_mvid_and_writes_a_deps_file_that_outranks_the_framework()
    {
        var store = new WovenStore(Path.Combine(_dir, "cache"), SockShim.Interceptor.Weaving.StoreWeaver.Weave);
        var first = store.Prepare(Runtime);
        var second = store.Prepare(Runtime);
        Assert.That(first.FromCache, Is.False);
        Assert.That(second.FromCache, Is.True);
        Assert.That(second.AssemblyPath, Does.Contain(Runtime.Version).And.Contain(Runtime.SocketsMvid.ToString("N")[..12]));
        string deps = File.ReadAllText(store.DepsPath(Runtime));
        Assert.That(deps, Does.Contain("\"fileVersion\": \"10.0.65535.0\"").And.Contain("\"assemblyVersion\": \"10.0.0.0\""));
        if (first.ReadyToRun)
        {
            using var pe = new System.Reflection.PortableExecutable.PEReader(File.OpenRead(first.AssemblyPath));
            Assert.That(pe.PEHeaders.CorHeader!.ManagedNativeHeaderDirectory.Size, Is.GreaterThan(0), "crossgen2 output carries ReadyToRun code");
        }
        else Assert.That(first.Warning, Does.Contain("IL-only"));
    }

    /// <summary>A crossgen2 that cannot be started (NuGet extracts it 0744: a packages folder of
    /// another account's, through NUGET_PACKAGES) leaves the copy IL-only with the warning that
    /// says why, as when crossgen2 cannot be had at all; it was a stack trace from Process.Start.</summary>
    [Test]
    public void A_crossgen2_that_cannot_be_started_leaves_the_copy_il_only_with_a_warning()
    {
        string packages = Path.Combine(_dir, "unstartable-packages");
        string tool = Path.Combine(packages, SockShim.Interceptor.Store.Crossgen.PackageId, Runtime.Version, "tools", "crossgen2");
        Directory.CreateDirectory(Path.GetDirectoryName(tool)!);
        File.WriteAllText(tool, "#!/bin/sh\nexit 0\n");
        File.SetUnixFileMode(tool, (UnixFileMode)0b110_100_100); // no one may execute it, root included
        var env = new Dictionary<string, string> { ["NUGET_PACKAGES"] = packages };
        var (exit, stdout, stderr) = Programs.Run("SockShim.Interceptor", ["prepare", "--cache", Path.Combine(_dir, "unstartable-cache")], env, TimeSpan.FromMinutes(3));
        Assert.That(exit, Is.Zero, stdout + stderr);
        Assert.That(stdout + stderr, Does.Contain("using the IL-only woven assembly").And.Contain($"crossgen2 {tool} could not be started"));
        Assert.That(stdout + stderr, Does.Not.Contain("   at "), "no stack trace");
    }
}
