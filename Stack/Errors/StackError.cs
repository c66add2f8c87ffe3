namespace SockShim.Stack.Errors;

/// <summary>What went wrong inside the Stack. Internal code returns these; the .NET edge (Shim)
/// turns them into a SocketException and the Berkeley edge into errno, each in one place.</summary>
public enum StackErrorCode
{
    /// <summary>Every address of the pool is held (EADDRNOTAVAIL).</summary>
    PoolExhausted,
    /// <summary>No configured pool serves the socket's address family (EAFNOSUPPORT).</summary>
    NoPoolForFamily,
    /// <summary>The named pool is not configured (EINVAL).</summary>
    UnknownPool,
    /// <summary>The provisioner could not make the address usable (EADDRNOTAVAIL).</summary>
    ProvisionFailed,
    /// <summary>The address is already present on the host; the pool tries another (EADDRINUSE).</summary>
    AddressInUse,
    /// <summary>The privileged helper grants this user no address from the pool (EACCES).</summary>
    NotGranted,
    /// <summary>Configuration is invalid (EINVAL).</summary>
    BadConfiguration,
    /// <summary>The pool's host-wide table is damaged, so the pool gives nothing (EADDRNOTAVAIL).</summary>
    TableDamaged,
}

/// <summary>An error with a message that names the pool, interface or setting involved.</summary>
public sealed record StackError(StackErrorCode Code, string Message)
{
    public override string ToString() => Message;
}
