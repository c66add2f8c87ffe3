using Microsoft.Extensions.Logging;

namespace SockShim.Interceptor.Host;

/// <summary>
/// The helper's lines about what it refused: connections over a bound, malformed requests,
/// unknown pools, pools without a grant, releases of what a connection does not hold. Any local
/// account can make the helper refuse as fast as it can send (the third review wrote 21 MB of log
/// a second from an account with no grant, and slowed a served user's requests tenfold), so
/// these lines are bounded: at most <see cref="PerSecond"/> a second for each such log, the next
/// one saying how many were left out (the helper keeps one for the accounts no grant names and
/// one for the rest, so the first cannot crowd out the second). What the helper serves is always
/// logged.
/// </summary>
internal sealed class RefusalLog(ILogger log)
{
    public const int PerSecond = 10;

    private readonly object _gate = new();
    private long _second;
    private int _written, _left;

    /// <summary>Writes a warning, unless this second's lines are written already (then counted).</summary>
    public void Warn(string template, params object?[] values)
    {
        int left;
        lock (_gate)
        {
            long now = Environment.TickCount64 / 1000;
            if (now != _second) (_second, _written) = (now, 0);
            if (_written >= PerSecond) { _left++; return; }
            _written++;
            (left, _left) = (_left, 0);
        }
#pragma warning disable CA2254 // the caller's template, with the count of lines left out added
        if (left == 0) log.LogWarning(template, values);
        else log.LogWarning(template + " ({LeftOut} more refusals not logged before this one)", [.. values, left]);
#pragma warning restore CA2254
    }

    /// <summary>One connection's refusals: the first is written (through the shared bound),
    /// the rest counted and said in one line when it closes; after
    /// <see cref="HelperLimits.MaxRefusedRequests"/> the connection is closed.</summary>
    public sealed class OfConnection(RefusalLog log, object peer, int max)
    {
        private const int Written = 1;
        private int _count, _unwritten;

        /// <summary>Whether the connection has been refused as often as it may be.</summary>
        public bool Exhausted => _count >= max;

        public void Warn(string template, params object?[] values)
        {
            if (++_count <= Written) log.Warn(template, values);
            else _unwritten++;
        }

        /// <summary>A refusal that ends the connection (at most one a connection): always written,
        /// within the shared bound.</summary>
        public void Last(string template, params object?[] values)
        {
            _count++;
            log.Warn(template, values);
        }

        /// <summary>When the connection closes: how many of its refusals were not written.</summary>
        public void Close(bool cutOff)
        {
            if (_unwritten > 0 || cutOff)
                log.Warn("{Peer}: {Count} requests refused on one connection, {Unwritten} of them not logged{End}", peer, _count, _unwritten,
                    cutOff ? $"; closed after {max}, the most one connection may make" : "");
        }
    }
}
