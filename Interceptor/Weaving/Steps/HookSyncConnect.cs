using SockShim.Interceptor.Contract;
using Mono.Cecil.Cil;

namespace SockShim.Interceptor.Weaving.Steps;

/// <summary>The private Socket.DoConnect(EndPoint, SocketAddress): the one caller of the OS
/// connect for every synchronous Connect overload, TcpClient.Connect and the IPAddress[] loop.</summary>
public sealed class HookSyncConnect : IWeaveStep
{
    public string Name => "hook Socket.DoConnect (synchronous connect)";

    public void Apply(WeaveContext c)
    {
        var doConnect = c.FindMethod("DoConnect", "EndPoint", "SocketAddress");
        IlEdit.InsertAtStart(doConnect, c.GuardedInvoke(nameof(ISocketHooks.Connecting), args =>
        {
            args.Add(Instruction.Create(OpCodes.Ldarg_0));
            args.Add(Instruction.Create(OpCodes.Ldarg_1));
        }, wiresIf: WeaveContext.Always));
        c.WovenMethods.Add(doConnect);
    }
}
