using System.Net.Sockets;

namespace SockShim.Binding;

/// <summary>The one place a SockShim failure becomes a SocketException at the .NET edge: the
/// SocketError is the errno's row of <see cref="SocketErrno"/>, never a raw errno.</summary>
internal static class ShimErrors
{
    public static SocketException ToException(BindFailure failure) =>
        new((int)SocketErrno.ToSocketError(failure.Errno), "SockShim: " + failure.Message);

    public static SocketException ToException(Stack.Errors.StackError error) => ToException(BindFailure.From(error));

    /// <summary>The socket was closed under the app because its lease ended.</summary>
    public static SocketException LeaseLost(string poolName, string reason) =>
        new((int)SocketError.AddressNotAvailable, $"SockShim: this socket was closed because its address is gone: {reason} (pool '{poolName}')");
}
