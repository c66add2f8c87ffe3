using Mono.Cecil;
using Mono.Cecil.Cil;
using SockShim.Interceptor.Contract;

namespace SockShim.Interceptor.Weaving;

/// <summary>What the steps share: the module being woven, the Socket type, the hook class and
/// its slots, and the framework types they are built from.</summary>
public sealed class WeaveContext
{
    public WeaveContext(ModuleDefinition module)
    {
        Module = module;
        Socket = module.GetType("System.Net.Sockets.Socket") ?? throw new WeaveException("System.Net.Sockets.Socket is not in this assembly");
        var ctor = FindMethod(".ctor", "AddressFamily", "SocketType", "ProtocolType");
        AddressFamily = ctor.Parameters[0].ParameterType;
        EndPoint = FindMethod("Bind", "EndPoint").Parameters[0].ParameterType;
        CoreLibrary = (AssemblyNameReference)module.TypeSystem.CoreLibrary;
    }

    public ModuleDefinition Module { get; }
    public TypeDefinition Socket { get; }
    public TypeReference AddressFamily { get; }
    public TypeReference EndPoint { get; }
    public AssemblyNameReference CoreLibrary { get; }
    public TypeDefinition Hooks { get; set; } = null!;
    /// <summary>SockShimWiring.Ensure(): calling it runs the wiring (its class's static constructor) once.</summary>
    public MethodDefinition EnsureWired { get; set; } = null!;
    public Dictionary<string, FieldDefinition> Slots { get; } = new();
    public List<MethodDefinition> WovenMethods { get; } = new();

    /// <summary>A Socket method by name and parameter type names, or a WeaveException naming it.</summary>
    public MethodDefinition FindMethod(string name, params string[] parameterTypes)
    {
        var found = Socket.Methods.Where(m => m.Name == name && m.Parameters.Count == parameterTypes.Length &&
            m.Parameters.Select(p => p.ParameterType.Name).SequenceEqual(parameterTypes)).ToList();
        if (found.Count != 1 || !found[0].HasBody)
            throw new WeaveException($"funnel point Socket.{name}({string.Join(", ", parameterTypes)}) is {(found.Count == 0 ? "missing" : "not a single method with a body")} in {Module.Assembly.Name.Name} {Module.Mvid}: this runtime's System.Net.Sockets changed, and SockShim must be updated for it");
        return found[0];
    }

    public TypeReference CoreType(string ns, string name, int genericArity = 0, string? contract = null)
    {
        var t = new TypeReference(ns, genericArity == 0 ? name : $"{name}`{genericArity}", Module, contract is null ? CoreLibrary : Contract(contract));
        for (int i = 0; i < genericArity; i++) t.GenericParameters.Add(new GenericParameter(t));
        return Module.ImportReference(t);
    }

    /// <summary>A framework contract assembly by name (System.Threading holds AsyncLocal; System.Runtime
    /// does not forward it), referenced like the core library.</summary>
    public AssemblyNameReference Contract(string name)
    {
        var existing = Module.AssemblyReferences.FirstOrDefault(r => r.Name == name);
        if (existing is not null) return existing;
        // What a weave reads keys a copy woven from an app's own runtime: a reference added here
        // must be one the key covers.
        if (!HookContract.AddedReferences.Contains(name))
            throw new WeaveException($"the weaver would add a reference to {name}, which is not among HookContract.AddedReferences (what keys a copy woven from an app's own runtime)");
        var added = new AssemblyNameReference(name, CoreLibrary.Version) { PublicKeyToken = CoreLibrary.PublicKeyToken };
        Module.AssemblyReferences.Add(added);
        return added;
    }

    /// <summary>The Invoke method of a closed generic delegate type (Func&lt;A, B&gt;.Invoke).</summary>
    public MethodReference InvokeOf(GenericInstanceType delegateType)
    {
        var open = delegateType.ElementType;
        int arity = open.GenericParameters.Count;
        bool isFunc = open.Name.StartsWith("Func");
        var invoke = new MethodReference("Invoke", isFunc ? open.GenericParameters[arity - 1] : Module.TypeSystem.Void, delegateType) { HasThis = true };
        int args = isFunc ? arity - 1 : arity;
        for (int i = 0; i < args; i++) invoke.Parameters.Add(new ParameterDefinition(open.GenericParameters[i]));
        return Module.ImportReference(invoke);
    }

    /// <summary>Whether a use of a slot nothing has filled yet wires SockShim first: the
    /// instructions branch to <c>wire</c> when it should, and fall through when it should not.</summary>
    public delegate void WiresIf(List<Instruction> il, Instruction wire);

    /// <summary>Every use wires SockShim when nothing has (a bind, a connect, a datagram).</summary>
    public static readonly WiresIf Always = (il, wire) => il.Add(Instruction.Create(OpCodes.Br, wire));

    /// <summary>Emits "if (slot != null) slot.Invoke(args...)", with <paramref name="loadArgs"/>
    /// pushing the arguments and <paramref name="afterInvoke"/> consuming a result. With
    /// <paramref name="wiresIf"/>, a slot still empty is first filled by wiring SockShim when the
    /// condition holds (SockShimWiring.Ensure()); without it an empty slot means nothing to do
    /// (a Dispose or a use after close of a socket SockShim never saw). Reading a slot never
    /// wires anything: a process pays for SockShim only at the first use that needs it.</summary>
    public List<Instruction> GuardedInvoke(string slot, Action<List<Instruction>> loadArgs, Action<List<Instruction>>? afterInvoke = null, WiresIf? wiresIf = null)
    {
        var field = Slots[slot];
        var skip = Instruction.Create(OpCodes.Nop);
        var call = Instruction.Create(OpCodes.Ldsfld, field);
        var list = new List<Instruction> { Instruction.Create(OpCodes.Ldsfld, field) };
        if (wiresIf is null) list.Add(Instruction.Create(OpCodes.Brfalse, skip));
        else
        {
            // if (slot == null) { if (!condition) goto skip; Ensure(); if (slot == null) goto skip; }
            var wire = Instruction.Create(OpCodes.Call, EnsureWired);
            list.Add(Instruction.Create(OpCodes.Brtrue, call));
            wiresIf(list, wire);
            list.Add(Instruction.Create(OpCodes.Br, skip));
            list.Add(wire);
            list.Add(Instruction.Create(OpCodes.Ldsfld, field));
            list.Add(Instruction.Create(OpCodes.Brfalse, skip));
        }
        list.Add(call);
        loadArgs(list);
        list.Add(Instruction.Create(OpCodes.Callvirt, InvokeOf((GenericInstanceType)field.FieldType)));
        afterInvoke?.Invoke(list);
        list.Add(skip);
        return list;
    }
}
