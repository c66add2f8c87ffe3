using System.Net.Sockets;
using System.Runtime.CompilerServices;
using SockShim.Stack.Claims;
using SockShim.Stack.Pools;

namespace SockShim.Binding;

/// <summary>
/// A DHCP lease that ends while its socket is open (expiry, a NAK to a renewal) takes the socket
/// with it: the address has left the host, so nothing sent from it would arrive. The socket is
/// closed, and its reason kept, so that the app's next call on it (under the launcher, whose
/// woven Socket asks here) fails with a SocketException that says what happened instead of a
/// bare ObjectDisposedException.
/// </summary>
internal static class LeaseLoss
{
    private sealed record Loss(string Pool, string Reason);

    private static readonly ConditionalWeakTable<Socket, Loss> s_lost = new();

    public static void Close(Socket socket, Lease lease, string reason)
    {
        s_lost.AddOrUpdate(socket, new Loss(lease.PoolName, reason));
        socket.Dispose();
    }

    public static void ThrowIfLost(Socket socket)
    {
        if (s_lost.TryGetValue(socket, out var loss)) throw ShimErrors.LeaseLost(loss.Pool, loss.Reason);
    }
}
