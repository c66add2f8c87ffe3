using SockShim.Interceptor.Contract;
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

        var start = new List<Instruction> { Instruction.Create(OpCodes.Ldarg_1), Instruction.Create(OpCodes.Stloc, requested) };
        start.AddRange(c.GuardedInvoke(nameof(ISocketHooks.MapFamily),
            args => args.Add(Instruction.Create(OpCodes.Ldarg_1)),
            result => result.Add(Instruction.Create(OpCodes.Starg_S, ctor.Parameters[0]))));
        IlEdit.InsertAtStart(ctor, start);

        IlEdit.InsertBeforeEachReturn(ctor, () => c.GuardedInvoke(nameof(ISocketHooks.Created), args =>
        {
            args.Add(Instruction.Create(OpCodes.Ldarg_0));
            args.Add(Instruction.Create(OpCodes.Ldloc, requested));
        }));
        c.WovenMethods.Add(ctor);
    }
}
