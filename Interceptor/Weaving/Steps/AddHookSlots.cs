using SockShim.Interceptor.Contract;
using Mono.Cecil;
using Mono.Cecil.Rocks;

namespace SockShim.Interceptor.Weaving.Steps;

/// <summary>Adds the public static class <c>System.Net.Sockets.SockShimHooks</c> with one
/// delegate field per hook, and the internal one whose static constructor wires them
/// (SockShimWiring, filled by the last step). Only framework types appear in them.</summary>
public sealed class AddHookSlots : IWeaveStep
{
    public string Name => "add hook slots";

    public void Apply(WeaveContext c)
    {
        if (c.Module.GetType(HookContract.FullTypeName) is not null)
            throw new WeaveException($"{c.Module.Assembly.Name.Name} is already woven (it has {HookContract.FullTypeName}); weave the runtime's own copy");
        var hooks = new TypeDefinition(HookContract.TypeNamespace, HookContract.TypeName,
            TypeAttributes.Public | TypeAttributes.Abstract | TypeAttributes.Sealed | TypeAttributes.BeforeFieldInit | TypeAttributes.Class,
            c.Module.TypeSystem.Object);
        c.Module.Types.Add(hooks);
        c.Hooks = hooks;

        // One field per method of the contract, typed Action<...> or Func<..., TResult> of the
        // method's signature, with the woven module's own types.
        var socket = (TypeReference)c.Socket;
        TypeReference Map(Type t, string slot) =>
            t == typeof(System.Net.Sockets.Socket) ? socket
            : t == typeof(System.Net.Sockets.AddressFamily) ? c.AddressFamily
            : t == typeof(System.Net.EndPoint) ? c.EndPoint
            : t == typeof(object) ? c.Module.TypeSystem.Object
            : throw new WeaveException($"slot {slot} of the hook contract uses {t.Name}, which the weaver does not map to the woven module's types");
        var declared = typeof(ISocketHooks).GetMethods().Select(m => m.Name).Order();
        if (!declared.SequenceEqual(HookContract.SlotNames.Order()))
            throw new WeaveException($"HookContract.SlotNames ({string.Join(", ", HookContract.SlotNames)}) does not list exactly the methods of ISocketHooks ({string.Join(", ", declared)})");
        foreach (var slot in HookContract.Slots)
        {
            var types = slot.GetParameters().Select(p => Map(p.ParameterType, slot.Name)).ToList();
            bool returns = slot.ReturnType != typeof(void);
            if (returns) types.Add(Map(slot.ReturnType, slot.Name));
            var open = c.CoreType("System", returns ? "Func" : "Action", types.Count);
            Add(slot.Name, open.MakeGenericInstanceType([.. types]));
        }

        // public static readonly AsyncLocal<bool> AddressScope = new(); (in a static constructor)
        var asyncLocal = c.CoreType("System.Threading", "AsyncLocal", 1, contract: "System.Threading").MakeGenericInstanceType(c.Module.TypeSystem.Boolean);
        var scope = new FieldDefinition(HookContract.AddressScope, FieldAttributes.Public | FieldAttributes.Static | FieldAttributes.InitOnly, c.Module.ImportReference(asyncLocal));
        hooks.Fields.Add(scope);
        var cctor = new MethodDefinition(".cctor", MethodAttributes.Private | MethodAttributes.Static | MethodAttributes.SpecialName | MethodAttributes.RTSpecialName | MethodAttributes.HideBySig, c.Module.TypeSystem.Void);
        var ctor = new MethodReference(".ctor", c.Module.TypeSystem.Void, c.Module.ImportReference(asyncLocal)) { HasThis = true };
        var il = cctor.Body.GetILProcessor();
        il.Emit(Mono.Cecil.Cil.OpCodes.Newobj, c.Module.ImportReference(ctor));
        il.Emit(Mono.Cecil.Cil.OpCodes.Stsfld, scope);
        il.Emit(Mono.Cecil.Cil.OpCodes.Ret);
        hooks.Methods.Add(cctor);
        hooks.Attributes &= ~TypeAttributes.BeforeFieldInit;

        // internal static class SockShimWiring { static SockShimWiring() { } internal static void Ensure() { } }
        // Not beforefieldinit: the first call of Ensure runs the static constructor, exactly once
        // (other threads wait for it), which the step "wire the slots on first use" fills.
        var wiring = new TypeDefinition(HookContract.TypeNamespace, HookContract.WiringTypeName,
            TypeAttributes.NotPublic | TypeAttributes.Abstract | TypeAttributes.Sealed | TypeAttributes.Class, c.Module.TypeSystem.Object);
        c.Module.Types.Add(wiring);
        var wiringCctor = new MethodDefinition(".cctor", MethodAttributes.Private | MethodAttributes.Static | MethodAttributes.SpecialName | MethodAttributes.RTSpecialName | MethodAttributes.HideBySig, c.Module.TypeSystem.Void);
        wiringCctor.Body.GetILProcessor().Emit(Mono.Cecil.Cil.OpCodes.Ret);
        wiring.Methods.Add(wiringCctor);
        var ensure = new MethodDefinition(HookContract.WiringMethodName, MethodAttributes.Assembly | MethodAttributes.Static | MethodAttributes.HideBySig, c.Module.TypeSystem.Void);
        ensure.ImplAttributes |= MethodImplAttributes.NoInlining; // its call is what runs the constructor
        ensure.Body.GetILProcessor().Emit(Mono.Cecil.Cil.OpCodes.Ret);
        wiring.Methods.Add(ensure);
        c.EnsureWired = ensure;

        void Add(string name, GenericInstanceType type)
        {
            var field = new FieldDefinition(name, FieldAttributes.Public | FieldAttributes.Static, c.Module.ImportReference(type));
            hooks.Fields.Add(field);
            c.Slots[name] = field;
        }
    }
}
