using Mono.Cecil;
using Mono.Cecil.Cil;
using Mono.Cecil.Rocks;

namespace SockShim.Interceptor.Weaving.Scopes;

/// <summary>
/// Rewrites an app's own assembly (at build time, from SockShim.Attributes.targets) so that each
/// method marked [NewAddressPerSocket] - directly, through its class, or through the assembly -
/// runs inside an AddressScope: <c>var s = AddressScope.Begin(); try { body } finally { s.Dispose(); }</c>.
/// For an async method the marked method is the stub that starts the state machine: the scope is
/// on when the machine first runs, so its continuations and the tasks it starts capture it, and it
/// is off again for the caller when the stub returns. Two named steps, like the sockets weaver.
/// </summary>
public static class ScopeWeaver
{
    public const string AttributeName = "SockShim.NewAddressPerSocketAttribute";
    private const string MarkerAttribute = "SockShim.ScopesWovenAttribute";

    /// <summary>Weaves <paramref name="path"/> in place (and its .pdb); returns the methods wrapped.
    /// An assembly already woven is left as it is.</summary>
    public static IReadOnlyList<string> Weave(string path)
    {
        string pdb = Path.ChangeExtension(path, ".pdb");
        bool symbols = File.Exists(pdb);
        var resolver = new DefaultAssemblyResolver();
        resolver.AddSearchDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        // Read from memory, so the files can be rewritten in place.
        using var input = new MemoryStream(File.ReadAllBytes(path));
        using var symbolInput = symbols ? new MemoryStream(File.ReadAllBytes(pdb)) : null;
        using var module = ModuleDefinition.ReadModule(input, new ReaderParameters
        {
            AssemblyResolver = resolver, ReadSymbols = symbols, SymbolStream = symbolInput,
            SymbolReaderProvider = symbols ? new Mono.Cecil.Pdb.PdbReaderProvider() : null,
        });
        if (module.Assembly.CustomAttributes.Any(a => a.AttributeType.FullName == MarkerAttribute) || module.GetType(MarkerAttribute) is not null)
            return [];
        var methods = FindMarked(module);
        if (methods.Count == 0) return [];
        var scope = ScopeMethods.Import(module);
        foreach (var method in methods) WrapInScope(method, scope);
        // Marks the assembly woven, so an incremental build never wraps a method twice.
        module.Types.Add(new TypeDefinition("SockShim", "ScopesWovenAttribute", TypeAttributes.NotPublic | TypeAttributes.Sealed, module.TypeSystem.Object));
        module.Write(path, new WriterParameters { WriteSymbols = symbols, SymbolWriterProvider = symbols ? new Mono.Cecil.Pdb.PdbWriterProvider() : null });
        return methods.Select(m => m.FullName).ToList();
    }

    /// <summary>Step "find marked methods": methods with bodies, in a marked assembly, type or
    /// themselves; compiler-generated types (state machines, closures) are covered by their stubs.</summary>
    public static List<MethodDefinition> FindMarked(ModuleDefinition module)
    {
        bool Marked(ICustomAttributeProvider p) => p.CustomAttributes.Any(a => a.AttributeType.FullName == AttributeName);
        static bool Generated(TypeDefinition t) => t.CustomAttributes.Any(a => a.AttributeType.Name == "CompilerGeneratedAttribute") || t.Name.Contains('<');
        bool assembly = Marked(module.Assembly);
        var found = new List<MethodDefinition>();
        foreach (var type in module.GetTypes().Where(t => !Generated(t)))
        {
            bool typeMarked = assembly || Marked(type) || (type.DeclaringType is { } outer && Marked(outer));
            foreach (var m in type.Methods)
                if (m.HasBody && !m.IsConstructor && (typeMarked || Marked(m))) found.Add(m);
        }
        return found;
    }

    /// <summary>Step "wrap in scope".</summary>
    public static void WrapInScope(MethodDefinition method, ScopeMethods scope)
    {
        var body = method.Body;
        body.SimplifyMacros();
        var il = body.GetILProcessor();
        var token = new VariableDefinition(scope.ScopeType);
        body.Variables.Add(token);
        VariableDefinition? result = method.ReturnType.MetadataType == MetadataType.Void ? null : new VariableDefinition(method.ReturnType);
        if (result is not null) body.Variables.Add(result);
        body.InitLocals = true;

        var first = body.Instructions[0];
        var finalRet = Instruction.Create(OpCodes.Ret);
        var exit = result is null ? finalRet : Instruction.Create(OpCodes.Ldloc, result);
        foreach (var ret in body.Instructions.Where(i => i.OpCode == OpCodes.Ret).ToList())
        {
            if (result is null)
            {
                ret.OpCode = OpCodes.Leave;
                ret.Operand = exit;
            }
            else
            {
                ret.OpCode = OpCodes.Stloc;
                ret.Operand = result;
                il.InsertAfter(ret, Instruction.Create(OpCodes.Leave, exit));
            }
        }
        var handler = Instruction.Create(OpCodes.Ldloca, token);
        il.Append(handler);
        il.Append(Instruction.Create(OpCodes.Call, scope.Dispose));
        il.Append(Instruction.Create(OpCodes.Endfinally));
        il.Append(exit);
        if (exit != finalRet) il.Append(finalRet);

        il.InsertBefore(first, Instruction.Create(OpCodes.Call, scope.Begin));
        il.InsertBefore(first, Instruction.Create(OpCodes.Stloc, token));
        // Outermost: listed after every handler the body already has.
        body.ExceptionHandlers.Add(new ExceptionHandler(ExceptionHandlerType.Finally)
        {
            TryStart = first,
            TryEnd = handler,
            HandlerStart = handler,
            HandlerEnd = exit,
        });
        body.OptimizeMacros();
    }
}

/// <summary>AddressScope.Begin and Scope.Dispose, imported into the module being woven.</summary>
public sealed class ScopeMethods
{
    public required TypeReference ScopeType { get; init; }
    public required MethodReference Begin { get; init; }
    public required MethodReference Dispose { get; init; }

    public static ScopeMethods Import(ModuleDefinition module)
    {
        var shim = module.AssemblyReferences.FirstOrDefault(r => r.Name == "SockShim")
            ?? throw new WeaveException($"{module.Name} marks methods with [NewAddressPerSocket] but does not reference SockShim");
        var addressScope = new TypeReference("SockShim", "AddressScope", module, shim);
        var scopeType = new TypeReference("", "Scope", module, shim, valueType: true) { DeclaringType = addressScope };
        return new ScopeMethods
        {
            ScopeType = module.ImportReference(scopeType),
            Begin = module.ImportReference(new MethodReference("Begin", scopeType, addressScope)),
            Dispose = module.ImportReference(new MethodReference("Dispose", module.TypeSystem.Void, scopeType) { HasThis = true }),
        };
    }
}
