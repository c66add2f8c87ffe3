using System.Net.Sockets;
using System.Runtime.CompilerServices;
using SockShim.Stack.Leases;

namespace SockShim;

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

    /// <summary>Closes <paramref name="socket"/> when <paramref name="lease"/> is lost. The
    /// socket is held weakly: a lease must not keep an abandoned socket from its finalizer.</summary>
    public static void CloseOnLoss(Socket socket, Lease lease)
    {
        if (lease.ExpiresAt is null) return; // a static pool's address never ends under its socket
        var weak = new WeakReference<Socket>(socket);
        lease.OnLost((l, reason) =>
        {
            if (!weak.TryGetTarget(out var s)) return;
            s_lost.AddOrUpdate(s, new Loss(l.PoolName, reason));
            s.Dispose();
        });
    }

    public static void ThrowIfLost(Socket socket)
    {
        if (s_lost.TryGetValue(socket, out var loss)) throw ShimErrors.LeaseLost(loss.Pool, loss.Reason);
    }
}
