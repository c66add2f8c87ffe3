using TargetInvocationException = System.Reflection.TargetInvocationException;
using System.Runtime.Loader;
using Mono.Cecil;
using Mono.Cecil.Cil;
using SockShim.Interceptor.Weaving.Scopes;

namespace SockShim.Tests.Interceptor;

/// <summary>The build-time weaver of [NewAddressPerSocket], on an assembly made here with Cecil
/// and then loaded and run: inside a marked method the scope is on, after it the caller's state is
/// back, early returns and exceptions included.</summary>
public class ScopeWeaverTests
{
    private string _dir = "";

    [SetUp]
    public void Dir() => _dir = Directory.CreateTempSubdirectory("sockshim-scope-").FullName;

    [TearDown]
    public void Clean() => Directory.Delete(_dir, true);

    /// <summary>class Probe { static bool Inside(int n) { if (n == 0) return AddressScope.IsActive; if (n == 1) throw ...; return IsActive; } }
    /// with the attribute on the assembly (when <paramref name="onAssembly"/>) or on nothing.</summary>
    private string Build(bool onAssembly)
    {
        var name = new AssemblyNameDefinition("ScopeProbe", new Version(1, 0));
        using var assembly = AssemblyDefinition.CreateAssembly(name, "ScopeProbe", ModuleKind.Dll);
        var module = assembly.MainModule;
        if (onAssembly)
            assembly.CustomAttributes.Add(new CustomAttribute(module.ImportReference(typeof(NewAddressPerSocketAttribute).GetConstructor(Type.EmptyTypes))));
        var type = new TypeDefinition("", "Probe", TypeAttributes.Public | TypeAttributes.Abstract | TypeAttributes.Sealed, module.ImportReference(typeof(object)));
        module.Types.Add(type);
        var method = new MethodDefinition("Inside", MethodAttributes.Public | MethodAttributes.Static, module.TypeSystem.Boolean);
        method.Parameters.Add(new ParameterDefinition(module.TypeSystem.Int32));
        type.Methods.Add(method);
        var il = method.Body.GetILProcessor();
        var isActive = module.ImportReference(typeof(AddressScope).GetProperty(nameof(AddressScope.IsActive))!.GetMethod);
        var notZero = Instruction.Create(OpCodes.Ldarg_0);
        var notOne = Instruction.Create(OpCodes.Call, isActive);
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Brtrue, notZero);
        il.Emit(OpCodes.Call, isActive);
        il.Emit(OpCodes.Ret);                       // an early return
        il.Append(notZero);
        il.Emit(OpCodes.Ldc_I4_1);
        il.Emit(OpCodes.Bne_Un, notOne);
        il.Emit(OpCodes.Newobj, module.ImportReference(typeof(InvalidOperationException).GetConstructor(Type.EmptyTypes)));
        il.Emit(OpCodes.Throw);                     // leaves by an exception
        il.Append(notOne);
        il.Emit(OpCodes.Ret);
        string path = Path.Combine(_dir, "ScopeProbe.dll");
        assembly.Write(path);
        return path;
    }

    private static Func<int, bool> Load(string path, AssemblyLoadContext context)
    {
        var type = context.LoadFromAssemblyPath(path).GetType("Probe")!;
        return n => (bool)type.GetMethod("Inside")!.Invoke(null, [n])!;
    }

    [Test]
    public void An_assembly_level_mark_wraps_every_method_and_the_scope_ends_with_the_method()
    {
        string path = Build(onAssembly: true);
        Assert.That(ScopeWeaver.Weave(path), Is.EqualTo(new[] { "System.Boolean Probe::Inside(System.Int32)" }));
        // The default context: the woven code must meet this process's SockShim, as an app's would.
        var context = new AssemblyLoadContext("scope-probe", isCollectible: true);
        context.Resolving += (_, n) => n.Name == "SockShim" ? typeof(AddressScope).Assembly : null;
        try
        {
            var inside = Load(path, context);
            Assert.That(AddressScope.IsActive, Is.False);
            Assert.That(inside(0), Is.True, "on at an early return");
            Assert.That(inside(2), Is.True, "on at the last return");
            Assert.That(AddressScope.IsActive, Is.False, "off again for the caller");
            var thrown = Assert.Throws<TargetInvocationException>(() => inside(1));
            Assert.That(thrown!.InnerException, Is.TypeOf<InvalidOperationException>());
            Assert.That(AddressScope.IsActive, Is.False, "off after an exception too");
            using (AddressScope.Begin()) Assert.That(inside(0), Is.True);
            using (AddressScope.Begin()) { _ = inside(0); Assert.That(AddressScope.IsActive, Is.True, "a caller's own scope is kept"); }
        }
        finally { context.Unload(); }
    }

    [Test]
    public void An_unmarked_assembly_is_left_as_it_is()
    {
        string path = Build(onAssembly: false);
        byte[] before = File.ReadAllBytes(path);
        Assert.That(ScopeWeaver.Weave(path), Is.Empty);
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(before));
    }
}
