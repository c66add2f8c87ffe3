using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace SockShim.Stack.Dhcp;

/// <summary>
/// Fresh random DHCP transaction ids, none of them one that is routed now.
/// </summary>
/// <remarks>Every broadcast shows its xid to the whole link, so a seen xid must not predict the
/// next one: a renewal's xid goes unicast to the server, unseen by other hosts on a switched
/// link, and that is what keeps them from answering it (a counter from one random start gave
/// them all). The draws come from <see cref="RandomNumberGenerator"/>, not Random.Shared: that
/// is xoshiro256**, a linear generator whose state follows from a few of its outputs, and it
/// also feeds the retransmission jitter. One Fill of 256 bytes serves 64 transactions, so an
/// xid costs a lock and an array read, and a Fill (about a microsecond) every 64.</remarks>
internal sealed class TransactionIds
{
    private readonly object _lock = new();
    private readonly uint[] _batch = new uint[64];
    private int _next = 64;
    private readonly HashSet<uint> _routed = new();

    /// <summary>Any thread: a random xid, never 0 (it reads as "none" in traces) and never one
    /// that is routed now (that lease would lose its replies to the new transaction).</summary>
    public uint Next()
    {
        lock (_lock)
        {
            while (true)
            {
                if (_next == _batch.Length)
                {
                    RandomNumberGenerator.Fill(MemoryMarshal.AsBytes(_batch.AsSpan()));
                    _next = 0;
                }
                uint xid = _batch[_next++];
                if (xid != 0 && !_routed.Contains(xid)) return xid;
            }
        }
    }

    /// <summary>Replies with <paramref name="xid"/> are routed to a lease (true) or no longer (false).</summary>
    public void Routed(uint xid, bool live)
    {
        lock (_lock)
        {
            if (live) _routed.Add(xid);
            else _routed.Remove(xid);
        }
    }
}
