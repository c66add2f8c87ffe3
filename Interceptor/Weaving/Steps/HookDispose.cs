using SockShim.Interceptor.Contract;
using Mono.Cecil.Cil;

namespace SockShim.Interceptor.Weaving.Steps;

/// <summary>Socket.Dispose(bool), which Dispose, Close and the finalizer all reach: after it has
/// closed the OS socket, the hook returns the address. It can run more than once, and on the
/// finalizer thread; the hook's release is idempotent.</summary>
public sealed class HookDispose : IWeaveStep
{
    public string Name => "hook Socket.Dispose(bool)";

    public void Apply(WeaveContext c)
    {
        var dispose = c.FindMethod("Dispose", "Boolean");
        IlEdit.InsertBeforeEachReturn(dispose, () => c.GuardedInvoke(nameof(ISocketHooks.Disposed),
            args => args.Add(Instruction.Create(OpCodes.Ldarg_0))));
        c.WovenMethods.Add(dispose);
    }
}
