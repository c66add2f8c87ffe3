using Mono.Cecil;
using Mono.Cecil.Cil;

namespace SockShim.Interceptor.Weaving;

/// <summary>
/// Makes a trimmed app's assembly loadable on the untrimmed framework of its version. The
/// trimmer removes an interface's or abstract class's method that nothing in the app calls, in
/// the framework and in the app's types that implement it (LegacyApp's async state machines lost
/// IAsyncStateMachine.SetStateMachine); on the full framework the method is back, the type no
/// longer implements it, and the runtime refuses to load the type (TypeLoadException). Each such
/// method gets a body that throws NotSupportedException: the trimmed app never called it, which
/// is why the trimmer could remove it. Only methods the type provably lacks get one: a type that
/// has a method of that name and arity (its own or a base type's) is left alone, so a real
/// implementation is never shadowed.
/// </summary>
internal static class TrimmedMembers
{
    /// <summary>Writes <paramref name="source"/> to <paramref name="target"/> with the missing
    /// methods added, resolving the framework from <paramref name="frameworkDirectory"/> and the
    /// app's other assemblies from beside the source; the names of the methods added.</summary>
    public static IReadOnlyList<string> Complete(string source, string frameworkDirectory, string target)
    {
        using var resolver = new BoundedResolver();
        foreach (var directory in resolver.GetSearchDirectories()) resolver.RemoveSearchDirectory(directory);
        resolver.AddSearchDirectory(frameworkDirectory); // first: the framework's, not the app's trimmed copies
        resolver.AddSearchDirectory(Path.GetDirectoryName(Path.GetFullPath(source))!);
        // Read from memory: the app's file is not held open, nor read twice.
        using var module = ModuleDefinition.ReadModule(new MemoryStream(Store.TrustedPaths.ReadBounded(source, MaxAssemblyBytes)), new ReaderParameters { AssemblyResolver = resolver });
        var added = new List<string>();
        foreach (var type in module.GetTypes().Where(t => t.IsClass && !t.IsInterface).ToList())
        {
            foreach (var implemented in type.Interfaces)
                if (Resolve(implemented.InterfaceType) is { } contract)
                    foreach (var method in contract.Methods.Where(m => m.IsAbstract && !m.IsStatic))
                        if (!Has(type, method.Name, method.Parameters.Count))
                            added.Add(AddStub(module, type, method, implemented.InterfaceType, explicitly: true));
            if (type.IsAbstract) continue;
            // A base further up is named in its subclass's terms; its generic arguments are
            // exact only for the direct base (a stub misnamed there fails to load, loudly).
            for (TypeReference? reference = type.BaseType; Resolve(reference) is { } baseType; reference = baseType.BaseType)
                foreach (var method in baseType.Methods.Where(m => m.IsAbstract && !m.IsStatic))
                    if (!Has(type, method.Name, method.Parameters.Count, below: baseType))
                        added.Add(AddStub(module, type, method, reference!, explicitly: false));
        }
        module.Write(target);
        return added;
    }

    /// <summary>Far above any assembly of the framework (System.Private.CoreLib: some 15 MB): a
    /// bound on what one file of the app's owner makes root read into memory.</summary>
    public const int MaxAssemblyBytes = 256 << 20;

    /// <summary>Resolves as Cecil's default does, but reads a candidate (the app's owner's file,
    /// beside the app) as <see cref="Complete"/> reads the source: a regular file, bounded, never
    /// a FIFO waited on.</summary>
    private sealed class BoundedResolver : DefaultAssemblyResolver
    {
        protected override AssemblyDefinition? SearchDirectory(AssemblyNameReference name, IEnumerable<string> directories, ReaderParameters parameters)
        {
            foreach (var directory in directories)
                foreach (var extension in (string[])[".exe", ".dll"])
                {
                    string file = Path.Combine(directory, name.Name + extension);
                    if (!File.Exists(file)) continue;
                    parameters.AssemblyResolver ??= this;
                    try { return ModuleDefinition.ReadModule(new MemoryStream(Store.TrustedPaths.ReadBounded(file, MaxAssemblyBytes)), parameters).Assembly; }
                    catch (BadImageFormatException) { }
                }
            return null;
        }
    }

    private static TypeDefinition? Resolve(TypeReference? type)
    {
        if (type is null) return null;
        try { return type.Resolve(); }
        catch (AssemblyResolutionException) { return null; } // an assembly not shipped: its types are not loaded either
    }

    // Whether the type, or a base type below `below`, has a method that may implement or
    // override one of this name and arity (an explicit implementation is named "Iface.Name").
    private static bool Has(TypeDefinition type, string name, int arity, TypeDefinition? below = null)
    {
        for (var t = type; t is not null && t != below; t = Resolve(t.BaseType))
            if (t.Methods.Any(m => m.Parameters.Count == arity && !m.IsStatic
                                   && (m.Name == name || m.Name.EndsWith("." + name) || m.Overrides.Any(o => o.Name == name))))
                return true;
        return false;
    }

    private static string AddStub(ModuleDefinition module, TypeDefinition type, MethodDefinition missing, TypeReference declaredBy, bool explicitly)
    {
        // A generic interface's or base class's signature is written in its own type parameters:
        // the stub's is the instance's (IEnumerable<T>.GetEnumerator of IEnumerable<int> returns IEnumerator<int>).
        TypeReference Close(TypeReference t) => module.ImportReference(Substitute(t, declaredBy as GenericInstanceType));
        var attributes = MethodAttributes.Virtual | MethodAttributes.HideBySig
                         | (explicitly ? MethodAttributes.Private | MethodAttributes.Final | MethodAttributes.NewSlot
                                       : Access(missing) | MethodAttributes.ReuseSlot);
        var stub = new MethodDefinition(explicitly ? $"{missing.DeclaringType.FullName}.{missing.Name}" : missing.Name, attributes, Close(missing.ReturnType));
        foreach (var p in missing.Parameters) stub.Parameters.Add(new ParameterDefinition(p.Name, p.Attributes, Close(p.ParameterType)));
        if (explicitly)
        {
            // The override names the interface method in the interface's own terms (!0, not int).
            var target = new MethodReference(missing.Name, module.ImportReference(missing.ReturnType), module.ImportReference(declaredBy)) { HasThis = true };
            foreach (var p in missing.Parameters) target.Parameters.Add(new ParameterDefinition(module.ImportReference(p.ParameterType)));
            stub.Overrides.Add(target);
        }
        var exception = new TypeReference("System", "NotSupportedException", module, module.TypeSystem.CoreLibrary);
        var constructor = new MethodReference(".ctor", module.TypeSystem.Void, exception) { HasThis = true };
        constructor.Parameters.Add(new ParameterDefinition(module.TypeSystem.String));
        var il = stub.Body.GetILProcessor();
        il.Emit(OpCodes.Ldstr, $"{missing.DeclaringType.FullName}.{missing.Name} was removed when this app was trimmed; SockShim runs the app on the full framework");
        il.Emit(OpCodes.Newobj, constructor);
        il.Emit(OpCodes.Throw);
        type.Methods.Add(stub);
        return $"{type.FullName}: {missing.DeclaringType.FullName}.{missing.Name}";
    }

    // An override from another assembly: `protected internal` is `protected` there.
    private static MethodAttributes Access(MethodDefinition overridden) => (overridden.Attributes & MethodAttributes.MemberAccessMask) switch
    {
        MethodAttributes.FamORAssem => MethodAttributes.Family,
        var access => access,
    };

    // The type with the declaring instance's arguments put in for its generic parameters.
    private static TypeReference Substitute(TypeReference t, GenericInstanceType? instance)
    {
        if (instance is null) return t;
        switch (t)
        {
            case GenericParameter { Type: GenericParameterType.Type } p when p.Position < instance.GenericArguments.Count:
                return instance.GenericArguments[p.Position];
            case ByReferenceType r: return new ByReferenceType(Substitute(r.ElementType, instance));
            case ArrayType a: return new ArrayType(Substitute(a.ElementType, instance), a.Rank);
            case PointerType p: return new PointerType(Substitute(p.ElementType, instance));
            case GenericInstanceType g:
                var closed = new GenericInstanceType(g.ElementType);
                foreach (var argument in g.GenericArguments) closed.GenericArguments.Add(Substitute(argument, instance));
                return closed;
            default: return t;
        }
    }
}
