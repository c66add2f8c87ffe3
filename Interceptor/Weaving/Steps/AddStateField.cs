using SockShim.Interceptor.Contract;
using Mono.Cecil;

namespace SockShim.Interceptor.Weaving.Steps;

/// <summary>Adds an instance field of type object to Socket (<see cref="HookContract.StateField"/>),
/// in which the hooks keep what they know about that socket. It replaces a ConditionalWeakTable
/// keyed by the socket: its entries cost a GC handle each to add and remove (about 0.3 us a
/// socket, on every connection of a load generator), and its value needed a finalizer of its own,
/// because the table lets go of an entry before the socket's own finalizer runs. A field is
/// reached from Socket's finalizer (Dispose(false), which the Disposed hook follows).</summary>
public sealed class AddStateField : IWeaveStep
{
    public string Name => "add the socket's state field";

    public void Apply(WeaveContext c)
    {
        if (c.Socket.Fields.Any(f => f.Name == HookContract.StateField))
            throw new WeaveException($"Socket already has a field named {HookContract.StateField}: this runtime's System.Net.Sockets changed, and SockShim must be updated for it");
        c.Socket.Fields.Add(new FieldDefinition(HookContract.StateField, FieldAttributes.Assembly, c.Module.TypeSystem.Object));
    }
}
