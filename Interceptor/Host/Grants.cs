

namespace SockShim.Interceptor.Host;

/// <summary>One grant of the helper's configuration: a user or a group may take addresses from
/// these pools, at most <see cref="Quota"/> at a time (per user).</summary>
public sealed class Grant
{
    public string? User { get; init; }
    public string? Group { get; init; }
    public List<string> Pools { get; init; } = new();
    public int Quota { get; init; } = 16;
}

/// <summary>The helper's grants, resolved to numeric ids once at start-up.</summary>
public sealed class Grants
{
    private readonly List<(uint? Uid, uint? Gid, Grant Grant)> _grants = new();

    public Grants(IEnumerable<Grant?> grants, Func<string, uint?> uidOf, Func<string, uint?> gidOf, List<string> problems)
    {
        int i = 0;
        foreach (var g in grants)
        {
            i++;
            // JSON's null in the list: not a grant (and never a grant to everyone).
            if (g is null) { problems.Add($"grant {i}: null; each grant is an object naming a user or a group and its pools"); continue; }
            uint? uid = null, gid = null;
            if (g.User is null == (g.Group is null)) { problems.Add($"grant {i}: name exactly one of user or group"); continue; }
            if (g.User is { } u && (uid = uidOf(u)) is null) { problems.Add($"grant {i}: no user '{u}' on this host"); continue; }
            if (g.Group is { } n && (gid = gidOf(n)) is null) { problems.Add($"grant {i}: no group '{n}' on this host"); continue; }
            if (g.Pools is null || g.Pools.Count == 0 || g.Pools.Any(p => p is null)) { problems.Add($"grant {i}: {(g.Pools is null || g.Pools.Count == 0 ? "names no pool" : "its pools hold null")}"); continue; }
            if (g.Quota < 1) { problems.Add($"grant {i}: quota {g.Quota} must be at least 1"); continue; }
            _grants.Add((uid, gid, g));
        }
    }

    /// <summary>Whether any grant names this user or one of its groups, for any pool.</summary>
    public bool Names(uint uid, IReadOnlyCollection<uint> gids) => _grants.Any(g => g.Uid == uid || (g.Gid is { } gid && gids.Contains(gid)));

    /// <summary>The largest quota any grant gives this user (or one of its groups) for
    /// <paramref name="pool"/>; null when none grants it.</summary>
    public int? QuotaFor(uint uid, IReadOnlyCollection<uint> gids, string pool)
    {
        int? best = null;
        foreach (var (u, g, grant) in _grants)
        {
            bool who = u == uid || (g is { } gid && gids.Contains(gid));
            if (!who || !grant.Pools.Contains(pool, StringComparer.OrdinalIgnoreCase)) continue;
            best = Math.Max(best ?? 0, grant.Quota);
        }
        return best;
    }
}
