using SockShim.Interceptor.Contract;
using Mono.Cecil;
using Mono.Cecil.Cil;

namespace SockShim.Interceptor.Weaving.Steps;

/// <summary>The internal Socket.ConnectAsync(SocketAsyncEventArgs, bool, bool, CancellationToken):
/// the one caller of the event-args connect for Task/ValueTask overloads, BeginConnect, TcpClient
/// and HttpClient. The hook goes right after ValidateForMultiConnect, which may have swapped in a
/// fresh unbound OS socket after a failed attempt of a multi-address connect.</summary>
public sealed class HookAsyncConnect : IWeaveStep
{
    public string Name => "hook Socket.ConnectAsync(SocketAsyncEventArgs, ...) after ValidateForMultiConnect";

    public void Apply(WeaveContext c)
    {
        var connect = c.FindMethod("ConnectAsync", "SocketAsyncEventArgs", "Boolean", "Boolean", "CancellationToken");
        var validate = connect.Body.Instructions.Where(i => i.OpCode.FlowControl == FlowControl.Call &&
            i.Operand is MethodReference m && m.Name == "ValidateForMultiConnect").ToList();
        if (validate.Count != 1)
            throw new WeaveException($"Socket.ConnectAsync(SocketAsyncEventArgs, bool, bool, CancellationToken) calls ValidateForMultiConnect {validate.Count} times, expected once: this runtime's connect path changed");
        var call = validate[0];
        // A call that returns a value leaves it on the stack for the next instruction: inject after that.
        var anchor = ((MethodReference)call.Operand).ReturnType.FullName == "System.Void" ? call
            : throw new WeaveException("ValidateForMultiConnect now returns a value: this runtime's connect path changed");

        var getRemote = c.Module.ImportReference(c.Module.GetType("System.Net.Sockets.SocketAsyncEventArgs")!.Properties
            .Single(p => p.Name == "RemoteEndPoint").GetMethod);
        IlEdit.InsertAfter(connect, anchor, c.GuardedInvoke(nameof(ISocketHooks.Connecting), args =>
        {
            args.Add(Instruction.Create(OpCodes.Ldarg_0));
            args.Add(Instruction.Create(OpCodes.Ldarg_1));
            args.Add(Instruction.Create(OpCodes.Callvirt, getRemote));
        }, wiresIf: WeaveContext.Always));
        c.WovenMethods.Add(connect);
    }
}
