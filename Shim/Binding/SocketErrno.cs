using System.Net.Sockets;
using SockShim.Stack;
using SockShim.Stack.Errors;
using Tmds.Linux;

namespace SockShim.Binding;

/// <summary>
/// errno and SocketError in one table, as dotnet/runtime keeps them in SocketErrorPal, and the
/// errno each Stack error stands for. The Berkeley edge reports the errno; the .NET edge throws
/// the SocketError of the same row, so both edges always agree.
/// </summary>
internal static class SocketErrno
{
    // errno -> SocketError, first row wins when a SocketError is looked up backwards.
    private static readonly (int Errno, SocketError Error)[] s_rows =
    [
        (LibC.EACCES, SocketError.AccessDenied),
        (LibC.EPERM, SocketError.AccessDenied),
        (LibC.EADDRINUSE, SocketError.AddressAlreadyInUse),
        (LibC.EADDRNOTAVAIL, SocketError.AddressNotAvailable),
        (LibC.EAFNOSUPPORT, SocketError.AddressFamilyNotSupported),
        (LibC.EAGAIN, SocketError.WouldBlock),
        (LibC.EALREADY, SocketError.AlreadyInProgress),
        (LibC.EBADF, SocketError.OperationAborted),
        (LibC.ECONNABORTED, SocketError.ConnectionAborted),
        (LibC.ECONNREFUSED, SocketError.ConnectionRefused),
        (LibC.ECONNRESET, SocketError.ConnectionReset),
        (LibC.EDESTADDRREQ, SocketError.DestinationAddressRequired),
        (LibC.EHOSTUNREACH, SocketError.HostUnreachable),
        (LibC.EINPROGRESS, SocketError.InProgress),
        (LibC.EINTR, SocketError.Interrupted),
        (LibC.EINVAL, SocketError.InvalidArgument),
        (LibC.EISCONN, SocketError.IsConnected),
        (LibC.EMFILE, SocketError.TooManyOpenSockets),
        (LibC.ENFILE, SocketError.TooManyOpenSockets),
        (LibC.EMSGSIZE, SocketError.MessageSize),
        (LibC.ENETDOWN, SocketError.NetworkDown),
        (LibC.ENETUNREACH, SocketError.NetworkUnreachable),
        (LibC.ENOBUFS, SocketError.NoBufferSpaceAvailable),
        (LibC.ENOPROTOOPT, SocketError.ProtocolOption),
        (LibC.ENOTCONN, SocketError.NotConnected),
        (LibC.ENOTSOCK, SocketError.NotSocket),
        (LibC.EOPNOTSUPP, SocketError.OperationNotSupported),
        (LibC.EPROTONOSUPPORT, SocketError.ProtocolNotSupported),
        (LibC.EPROTOTYPE, SocketError.ProtocolType),
        (LibC.ETIMEDOUT, SocketError.TimedOut),
    ];

    public static SocketError ToSocketError(int errno)
    {
        foreach (var (e, error) in s_rows)
            if (e == errno) return error;
        return SocketError.SocketError;
    }

    public static int ToErrno(SocketError error)
    {
        foreach (var (e, s) in s_rows)
            if (s == error) return e;
        return LibC.EINVAL;
    }

    /// <summary>The errno a Stack error is reported with at the Berkeley edge.</summary>
    public static int Of(StackErrorCode code) => code switch
    {
        StackErrorCode.PoolExhausted or StackErrorCode.ProvisionFailed or StackErrorCode.TableDamaged => LibC.EADDRNOTAVAIL,
        StackErrorCode.AddressInUse => LibC.EADDRINUSE,
        StackErrorCode.NoPoolForFamily => LibC.EAFNOSUPPORT,
        StackErrorCode.NotGranted => LibC.EACCES,
        _ => LibC.EINVAL,
    };
}

/// <summary>Why the binder could not give a socket its address: the errno, and a message naming
/// the pool, interface or option.</summary>
internal readonly record struct BindFailure(int Errno, string Message)
{
    public static BindFailure From(StackError error) => new(SocketErrno.Of(error.Code), error.Message);
}
