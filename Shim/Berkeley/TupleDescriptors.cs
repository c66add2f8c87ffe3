using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using SockShim.Binding;
using SockShim.Stack.Claims;
using SockShim.Stack.Pools;
using Tmds.Linux;

namespace SockShim;

/// <summary>One socket asked for with a tuple, shared by every descriptor dup'ed from it:
/// its address goes back when the last of them is closed.</summary>
internal sealed class TupleEntry(int family, string? pool) : IBindTarget
{
    public int Family { get; } = family;
    public string? Pool { get; } = pool;
    public Lease? Lease;

    int IBindTarget.Descriptor => Descriptor;
    AddressFamily IBindTarget.Family => Family == SockAddr.AF_INET ? AddressFamily.InterNetwork : AddressFamily.InterNetworkV6;
    bool IBindTarget.DualMode => false;
    string? IBindTarget.PoolName => Pool;
    Lease? IBindTarget.Lease { get => Volatile.Read(ref Lease); set => Volatile.Write(ref Lease, value); }

    int IBindTarget.BindEndpoint(IPEndPoint own) => SocketBinder.BindDescriptor(Descriptor, own, Family);

    /// <summary>Only while the descriptor is still this socket's (it may have been closed and
    /// reused): shut down, so reads see end of file and writes fail.</summary>
    void IBindTarget.LeaseLost(Lease lease, string reason)
    {
        if (TupleDescriptors.TryGet(Descriptor, out var current) && ReferenceEquals(current, this))
            LibC.shutdown(Descriptor, LibC.SHUT_RDWR);
    }
    public int Descriptors = 1;
    /// <summary>The descriptor socket() returned (dup'ed ones share the entry).</summary>
    public int Descriptor { get; init; } = -1;
    /// <summary>False once the app bound a specific address: the socket is its own then.</summary>
    public bool Active = true;
}

/// <summary>Descriptor → tuple entry, for the process.</summary>
internal static class TupleDescriptors
{
    private static readonly ConcurrentDictionary<int, TupleEntry> s_entries = new();

    public static bool TryGet(int fd, out TupleEntry entry) => s_entries.TryGetValue(fd, out entry!);

    public static void Add(int fd, TupleEntry entry) => s_entries[fd] = entry;

    /// <summary>Another descriptor now refers to the same socket (dup, dup2, F_DUPFD).</summary>
    public static void Alias(int fd, TupleEntry entry)
    {
        Interlocked.Increment(ref entry.Descriptors);
        s_entries[fd] = entry;
    }

    /// <summary>The descriptor is closed; the last one gives the address back.</summary>
    public static void Forget(int fd)
    {
        if (!s_entries.TryRemove(fd, out var entry)) return;
        if (Interlocked.Decrement(ref entry.Descriptors) == 0)
            Interlocked.Exchange(ref entry.Lease, null)?.Release();
    }
}
