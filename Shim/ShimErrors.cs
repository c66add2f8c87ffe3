using System.Net.Sockets;
using SockShim.Stack;

namespace SockShim;

/// <summary>The one place a Stack error becomes a SocketException at the .NET edge.</summary>
internal static class ShimErrors
{
    public static SocketError ToSocketError(StackErrorCode code) => code switch
    {
        StackErrorCode.PoolExhausted => SocketError.AddressNotAvailable,
        StackErrorCode.ProvisionFailed => SocketError.AddressNotAvailable,
        StackErrorCode.NoPoolForFamily => SocketError.AddressFamilyNotSupported,
        StackErrorCode.UnknownPool => SocketError.InvalidArgument,
        StackErrorCode.NotGranted => SocketError.AccessDenied,
        _ => SocketError.InvalidArgument,
    };

    public static SocketException ToException(StackError error) =>
        new((int)ToSocketError(error.Code), "SockShim: " + error.Message);

    /// <summary>The socket was closed under the app because its lease ended.</summary>
    public static SocketException LeaseLost(string poolName, string reason) =>
        new((int)SocketError.AddressNotAvailable, $"SockShim: this socket was closed because its address is gone: {reason} (pool '{poolName}')");

    public static SocketException Unreachable(string message) =>
        new((int)SocketError.NetworkUnreachable, "SockShim: " + message);
}
