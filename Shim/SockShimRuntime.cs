using SockShim.Stack;
using SockShim.Stack.Configuration;
using SockShim.Stack.Errors;

namespace SockShim;

/// <summary>The process's address stack, used by tuple sockets that are not given one.</summary>
public static class SockShimRuntime
{
    private static readonly object s_gate = new();
    private static AddressStack? s_stack;

    /// <summary>
    /// The stack built on first use from SOCKSHIM_* variables and SOCKSHIM_CONFIG; with none set,
    /// the embedded default (the loopback pool 127.100.0.0/16). Throws
    /// <see cref="ConfigurationException"/> naming the bad setting.
    /// </summary>
    public static AddressStack Stack
    {
        get
        {
            if (Volatile.Read(ref s_stack) is { } stack) return stack;
            lock (s_gate) return s_stack ??= AddressStack.FromEnvironment();
        }
    }

    /// <summary>SOCKSHIM_DISABLE=1: tuple sockets behave as ordinary sockets (the unpatched run of
    /// `sockshim compare`, or switching SockShim off without changing code).</summary>
    public static bool Disabled { get; } = Environment.GetEnvironmentVariable("SOCKSHIM_DISABLE") == "1";

    /// <summary>Replaces the process's stack (for hosts that configure it in code).</summary>
    public static void Use(AddressStack stack)
    {
        lock (s_gate) s_stack = stack;
    }

    /// <summary>Back to "built from the environment on next use" (tests).</summary>
    internal static void Reset()
    {
        lock (s_gate) s_stack = null;
    }
}
