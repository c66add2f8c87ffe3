using Mono.Cecil;
using Mono.Cecil.Rocks;

namespace SockShim.Interceptor.Weaving.Steps;

/// <summary>Adds the public static class <c>System.Net.Sockets.SockShimHooks</c> with one
/// delegate field per hook. Only framework types appear in it.</summary>
public sealed class AddHookSlots : IWeaveStep
{
    public string Name => "add hook slots";

    public void Apply(WeaveContext c)
    {
        if (c.Module.GetType(HookSlots.FullTypeName) is not null)
            throw new WeaveException($"{c.Module.Assembly.Name.Name} is already woven (it has {HookSlots.FullTypeName}); weave the runtime's own copy");
        var hooks = new TypeDefinition(HookSlots.TypeNamespace, HookSlots.TypeName,
            TypeAttributes.Public | TypeAttributes.Abstract | TypeAttributes.Sealed | TypeAttributes.BeforeFieldInit | TypeAttributes.Class,
            c.Module.TypeSystem.Object);
        c.Module.Types.Add(hooks);
        c.Hooks = hooks;

        var socket = (TypeReference)c.Socket;
        var obj = c.Module.TypeSystem.Object;
        var func2 = c.CoreType("System", "Func", 2);
        var func3 = c.CoreType("System", "Func", 3);
        var action1 = c.CoreType("System", "Action", 1);
        var action2 = c.CoreType("System", "Action", 2);

        Add(HookSlots.MapFamily, func2.MakeGenericInstanceType(c.AddressFamily, c.AddressFamily));
        Add(HookSlots.Created, action2.MakeGenericInstanceType(socket, c.AddressFamily));
        Add(HookSlots.Binding, func3.MakeGenericInstanceType(socket, c.EndPoint, c.EndPoint));
        Add(HookSlots.Connecting, action2.MakeGenericInstanceType(socket, c.EndPoint));
        Add(HookSlots.SendingTo, action2.MakeGenericInstanceType(socket, obj));
        Add(HookSlots.Disposed, action1.MakeGenericInstanceType(socket));
        Add(HookSlots.UsedAfterClose, action1.MakeGenericInstanceType(socket));

        // public static readonly AsyncLocal<bool> AddressScope = new(); (in a static constructor)
        var asyncLocal = c.CoreType("System.Threading", "AsyncLocal", 1, contract: "System.Threading").MakeGenericInstanceType(c.Module.TypeSystem.Boolean);
        var scope = new FieldDefinition(HookSlots.AddressScope, FieldAttributes.Public | FieldAttributes.Static | FieldAttributes.InitOnly, c.Module.ImportReference(asyncLocal));
        hooks.Fields.Add(scope);
        var cctor = new MethodDefinition(".cctor", MethodAttributes.Private | MethodAttributes.Static | MethodAttributes.SpecialName | MethodAttributes.RTSpecialName | MethodAttributes.HideBySig, c.Module.TypeSystem.Void);
        var ctor = new MethodReference(".ctor", c.Module.TypeSystem.Void, c.Module.ImportReference(asyncLocal)) { HasThis = true };
        var il = cctor.Body.GetILProcessor();
        il.Emit(Mono.Cecil.Cil.OpCodes.Newobj, c.Module.ImportReference(ctor));
        il.Emit(Mono.Cecil.Cil.OpCodes.Stsfld, scope);
        il.Emit(Mono.Cecil.Cil.OpCodes.Ret);
        hooks.Methods.Add(cctor);
        hooks.Attributes &= ~TypeAttributes.BeforeFieldInit;

        void Add(string name, GenericInstanceType type)
        {
            var field = new FieldDefinition(name, FieldAttributes.Public | FieldAttributes.Static, c.Module.ImportReference(type));
            hooks.Fields.Add(field);
            c.Slots[name] = field;
        }
    }
}
