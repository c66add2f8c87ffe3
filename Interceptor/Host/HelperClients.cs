using SockShim.Stack.Pools;

namespace SockShim.Interceptor.Host;

/// <summary>How much of the helper its clients may take: connections in all and per user; of
/// them, how many the accounts no grant names may hold together (they can only ask what a pool
/// is, and uids are cheap: an account with subordinate uids connects as thousands of users, so
/// per-user bounds alone let them fill the helper); how long a connection that holds no address
/// is kept, counted from when it last held one, whatever it says (or may stop in the middle of a
/// request); and how many refused requests one connection holding nothing may make. Any local account can connect, so all of it is bounded.</summary>
public sealed record HelperLimits(int MaxConnections, int MaxConnectionsPerUser, TimeSpan IdleTimeout, int MaxUngrantedConnections = 16, int MaxRefusedRequests = 16)
{
    public static readonly HelperLimits Default = new(256, 32, TimeSpan.FromSeconds(30));
}

/// <summary>
/// The helper's book of who is connected and what each user holds. A user's quota is counted
/// from the leases it holds that are still live (plus the acquisitions in progress), never from
/// a counter each path must remember to change: a lease that ends by release, by its connection
/// closing, or by the DHCP server taking it back (NAK, expiry) stops counting the moment it ends.
/// </summary>
internal sealed class HelperClients(HelperLimits limits)
{
    private readonly object _gate = new();
    private int _connections, _ungranted;
    private readonly Dictionary<uint, int> _connectionsOf = new();
    private readonly Dictionary<uint, List<Lease>> _leasesOf = new();
    private readonly Dictionary<uint, int> _acquiringOf = new();

    /// <summary>Takes a connection of <paramref name="uid"/> in, or says why not (null: admitted;
    /// then <see cref="Leave"/> must follow with the same arguments). Those of accounts no grant
    /// names (<paramref name="granted"/> false) share their own few places, so however many uids
    /// they connect as, the accounts with grants always find the rest.</summary>
    public string? Admit(uint uid, bool granted)
    {
        lock (_gate)
        {
            if (_connections >= limits.MaxConnections)
                return $"the helper already has {_connections} connections, its maximum; try again later";
            if (!granted && _ungranted >= limits.MaxUngrantedConnections)
                return $"the helper already has {_ungranted} connections of accounts no grant names, the most it keeps for them; try again later";
            int mine = _connectionsOf.GetValueOrDefault(uid);
            if (mine >= limits.MaxConnectionsPerUser)
                return $"uid {uid} already has {mine} connections to the helper, the most one user may have";
            _connections++;
            if (!granted) _ungranted++;
            _connectionsOf[uid] = mine + 1;
            return null;
        }
    }

    public void Leave(uint uid, bool granted)
    {
        lock (_gate)
        {
            _connections--;
            if (!granted) _ungranted--;
            if (--_connectionsOf[uid] == 0) _connectionsOf.Remove(uid);
        }
    }

    /// <summary>Reserves one address of <paramref name="quota"/> for <paramref name="uid"/> while
    /// it is being acquired; false, with what it holds, when the quota is reached. A reservation
    /// ends with <see cref="Settle"/>, whether the acquisition succeeded or not.</summary>
    public bool TryReserve(uint uid, int quota, out int used)
    {
        lock (_gate)
        {
            used = LiveOf(uid) + _acquiringOf.GetValueOrDefault(uid);
            if (used >= quota) return false;
            _acquiringOf[uid] = _acquiringOf.GetValueOrDefault(uid) + 1;
            return true;
        }
    }

    /// <summary>Ends a reservation: the lease acquired (counted while it lives), or null.</summary>
    public void Settle(uint uid, Lease? lease)
    {
        lock (_gate)
        {
            if (--_acquiringOf[uid] == 0) _acquiringOf.Remove(uid);
            if (lease is null) return;
            if (!_leasesOf.TryGetValue(uid, out var leases)) _leasesOf[uid] = leases = new();
            leases.Add(lease);
        }
    }

    /// <summary>Live addresses a user holds through the helper now.</summary>
    public int HeldBy(uint uid) { lock (_gate) return LiveOf(uid); }

    // Under _gate: drops the leases that ended (however they ended) and counts the rest.
    private int LiveOf(uint uid)
    {
        if (!_leasesOf.TryGetValue(uid, out var leases)) return 0;
        leases.RemoveAll(l => l.IsReleased);
        if (leases.Count == 0) _leasesOf.Remove(uid);
        return leases.Count;
    }
}
