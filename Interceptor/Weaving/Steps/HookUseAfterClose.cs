using SockShim.Interceptor.Contract;
using Mono.Cecil.Cil;

namespace SockShim.Interceptor.Weaving.Steps;

/// <summary>Socket.ThrowIfDisposed (every public call on a closed socket passes it) and
/// UpdateStatusAfterSocketErrorAndThrowException (a synchronous call that failed, for example
/// because the socket was closed under it): when the socket is disposed, the hook may throw a
/// SocketException saying why SockShim closed it, before .NET throws its generic one.</summary>
public sealed class HookUseAfterClose : IWeaveStep
{
    public string Name => "hook Socket.ThrowIfDisposed and the synchronous error path";

    public void Apply(WeaveContext c)
    {
        var disposed = c.Socket.Methods.FirstOrDefault(m => m.Name == "get_Disposed" && !m.HasParameters)
            ?? throw new WeaveException("Socket.Disposed (get_Disposed) was not found: the runtime's Socket has changed; update the weaver");
        foreach (var method in new[] { c.FindMethod("ThrowIfDisposed"), c.FindMethod("UpdateStatusAfterSocketErrorAndThrowException", "SocketError", "Boolean", "String") })
        {
            // if (this.Disposed && slot != null) slot(this);
            var code = new List<Instruction>();
            var invoke = c.GuardedInvoke(nameof(ISocketHooks.UsedAfterClose), args => args.Add(Instruction.Create(OpCodes.Ldarg_0)));
            code.Add(Instruction.Create(OpCodes.Ldarg_0));
            code.Add(Instruction.Create(OpCodes.Call, disposed));
            code.Add(Instruction.Create(OpCodes.Brfalse, invoke[^1]));
            code.AddRange(invoke);
            IlEdit.InsertAtStart(method, code);
            c.WovenMethods.Add(method);
        }
    }
}
