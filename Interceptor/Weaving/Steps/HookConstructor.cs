using SockShim.Interceptor.Contract;
using Mono.Cecil;
using Mono.Cecil.Cil;

namespace SockShim.Interceptor.Weaving.Steps;

/// <summary>Socket(AddressFamily, SocketType, ProtocolType): maps AF_INET_TUPLE to the real
/// family before the OS socket is made, and reports the new socket with the family asked for.
/// Socket(SocketType, ProtocolType) chains into this one; accepted sockets use another.</summary>
public sealed class HookConstructor : IWeaveStep
{
    public string Name => "hook Socket(AddressFamily, SocketType, ProtocolType)";

    public void Apply(WeaveContext c)
    {
        var ctor = c.FindMethod(".ctor", "AddressFamily", "SocketType", "ProtocolType");
        var requested = new VariableDefinition(c.AddressFamily);
        ctor.Body.Variables.Add(requested);
        ctor.Body.InitLocals = true;

        // A tuple family needs SockShim at once; an ordinary socket only when a bind, connect or
        // datagram does, or when it is made in a [NewAddressPerSocket] flow (mode attribute).
        void IsTuple(List<Instruction> il, Func<Instruction> family, Instruction wire) => il.AddRange(
        [
            family(), Instruction.Create(OpCodes.Ldc_I4, (int)HookContract.TupleInet), Instruction.Create(OpCodes.Beq, wire),
            family(), Instruction.Create(OpCodes.Ldc_I4, (int)HookContract.TupleInet6), Instruction.Create(OpCodes.Beq, wire),
        ]);
        var start = new List<Instruction> { Instruction.Create(OpCodes.Ldarg_1), Instruction.Create(OpCodes.Stloc, requested) };
        start.AddRange(c.GuardedInvoke(nameof(ISocketHooks.MapFamily),
            args => args.Add(Instruction.Create(OpCodes.Ldarg_1)),
            result => result.Add(Instruction.Create(OpCodes.Starg_S, ctor.Parameters[0])),
            (il, wire) => IsTuple(il, () => Instruction.Create(OpCodes.Ldarg_1), wire)));
        IlEdit.InsertAtStart(ctor, start);

        var scope = c.Hooks.Fields.Single(f => f.Name == HookContract.AddressScope);
        var scopeType = (GenericInstanceType)scope.FieldType;
        var scopeValue = c.Module.ImportReference(new MethodReference("get_Value", scopeType.ElementType.GenericParameters[0], scopeType) { HasThis = true });
        IlEdit.InsertBeforeEachReturn(ctor, () => c.GuardedInvoke(nameof(ISocketHooks.Created), args =>
        {
            args.Add(Instruction.Create(OpCodes.Ldarg_0));
            args.Add(Instruction.Create(OpCodes.Ldloc, requested));
        }, wiresIf: (il, wire) =>
        {
            IsTuple(il, () => Instruction.Create(OpCodes.Ldloc, requested), wire);
            il.AddRange([Instruction.Create(OpCodes.Ldsfld, scope), Instruction.Create(OpCodes.Callvirt, scopeValue), Instruction.Create(OpCodes.Brtrue, wire)]);
        }));
        c.WovenMethods.Add(ctor);
    }
}
