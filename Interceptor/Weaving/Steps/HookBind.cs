using SockShim.Interceptor.Contract;
using Mono.Cecil.Cil;

namespace SockShim.Interceptor.Weaving.Steps;

/// <summary>Socket.Bind(EndPoint): every bind (TcpListener, UdpClient included) passes here, and
/// the hook may put the socket's own address into a wildcard endpoint.</summary>
public sealed class HookBind : IWeaveStep
{
    public string Name => "hook Socket.Bind(EndPoint)";

    public void Apply(WeaveContext c)
    {
        var bind = c.FindMethod("Bind", "EndPoint");
        IlEdit.InsertAtStart(bind, c.GuardedInvoke(nameof(ISocketHooks.Binding),
            args =>
            {
                args.Add(Instruction.Create(OpCodes.Ldarg_0));
                args.Add(Instruction.Create(OpCodes.Ldarg_1));
            },
            result => result.Add(Instruction.Create(OpCodes.Starg_S, bind.Parameters[0])),
            WeaveContext.Always));
        c.WovenMethods.Add(bind);
    }
}
