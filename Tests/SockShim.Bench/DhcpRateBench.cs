using System.Diagnostics;
using SockShim.Stack;
using SockShim.Stack.Configuration;
using SockShim.Stack.Pools;

/// <summary>
/// Leases per second from one DHCP server (or failover pair) for N clients: N sockets' leases
/// taken by up to P threads at once, timed from the first request to the last lease bound and
/// on the interface, as perfdhcp's avalanche scenario times N clients' DORA exchanges
/// (bench/dhcp-ha.sh runs both against the same server). Then a second figure: the time per
/// lease one at a time (the median of 50), which is the latency a single socket sees.
/// </summary>
internal static class DhcpRateBench
{
    public static int Run(int n, int parallel)
    {
        using var stack = AddressStack.Create(SettingsLoader.Load());
        var pool = stack.Pools[0];
        var leases = new Lease[n];
        string? failure = null;
        var clock = Stopwatch.StartNew();
        Parallel.For(0, n, new ParallelOptions { MaxDegreeOfParallelism = parallel }, i =>
        {
            if (pool.TryAcquire("bench", out var lease, out var error)) leases[i] = lease;
            else failure ??= error!.Message;
        });
        double seconds = clock.Elapsed.TotalSeconds;
        if (failure is not null) { Console.Error.WriteLine($"error: {failure}"); return 1; }
        Console.WriteLine($"sockshim {n} clients ({parallel} at a time): {n / seconds:F0} leases/s, {seconds * 1000 / n:F2} ms per lease ({seconds:F2} s in all)");
        foreach (var lease in leases) lease.Release();

        var each = new List<double>();
        for (int i = 0; i < 50; i++)
        {
            long started = Stopwatch.GetTimestamp();
            if (!pool.TryAcquire("bench", out var lease, out var error)) { Console.Error.WriteLine($"error: {error!.Message}"); return 1; }
            each.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            lease.Release();
        }
        Console.WriteLine($"sockshim one at a time: {each.Order().ElementAt(each.Count / 2):F2} ms per lease, median of {each.Count}");
        return 0;
    }
}
