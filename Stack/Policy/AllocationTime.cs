namespace SockShim.Stack.Policy;

/// <summary>When a tuple socket gets its address.</summary>
public enum AllocationTime
{
    /// <summary>At socket creation (the method's socket() call).</summary>
    Eager,
    /// <summary>At the first bind, connect or sendto.</summary>
    Lazy,
}
