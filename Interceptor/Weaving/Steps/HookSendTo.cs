using SockShim.Interceptor.Contract;
using Mono.Cecil.Cil;

namespace SockShim.Interceptor.Weaving.Steps;

/// <summary>The SendTo funnels where an unbound UDP socket is bound implicitly by the kernel:
/// the overloads that do the work (the others chain into these) and SendToAsync(event args).</summary>
public sealed class HookSendTo : IWeaveStep
{
    public string Name => "hook Socket.SendTo / SendToAsync (UDP implicit bind)";

    private static readonly (string Name, string[] Parameters, int TargetArg)[] Funnels =
    [
        ("SendTo", ["Byte[]", "Int32", "Int32", "SocketFlags", "EndPoint"], 5),
        ("SendTo", ["ReadOnlySpan`1", "SocketFlags", "EndPoint"], 3),
        ("SendTo", ["ReadOnlySpan`1", "SocketFlags", "SocketAddress"], 3),
        ("SendToAsync", ["SocketAsyncEventArgs", "CancellationToken"], 1),
    ];

    public void Apply(WeaveContext c)
    {
        foreach (var (name, parameters, target) in Funnels)
        {
            var method = c.FindMethod(name, parameters);
            IlEdit.InsertAtStart(method, c.GuardedInvoke(nameof(ISocketHooks.SendingTo), args =>
            {
                args.Add(Instruction.Create(OpCodes.Ldarg_0));
                args.Add(Instruction.Create(OpCodes.Ldarg, method.Parameters[target - 1]));
            }, wiresIf: WeaveContext.Always));
            c.WovenMethods.Add(method);
        }
    }
}
