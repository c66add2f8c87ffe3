using SockShim.Stack.Pools;

/// <summary>
/// cycle N LOG: takes and gives back addresses until killed, holding up to N at a time, each for
/// a random while (up to 300 ms, so some outlive a whole `sockshim gc`). Appends "take A" to LOG
/// once A is on the host, "drop A" before giving it back and "gone A" when that is done, each line
/// a single write(2): a test that stops this process (SIGSTOP) reads from LOG exactly the
/// addresses it holds, and whether it is inside a release.
/// </summary>
internal static class Cycle
{
    public static int Run(AddressPool pool, int count, string logPath)
    {
        using var log = new StreamWriter(new FileStream(logPath, FileMode.Append, FileAccess.Write, FileShare.Read, bufferSize: 0)) { AutoFlush = true };
        var random = new Random();
        var held = new List<(Lease Lease, long Until)>();
        log.WriteLine("started");
        while (true)
        {
            long now = Environment.TickCount64;
            for (int i = held.Count - 1; i >= 0; i--)
            {
                if (held[i].Until > now) continue;
                log.WriteLine($"drop {held[i].Lease.Address}");
                held[i].Lease.Release();
                log.WriteLine($"gone {held[i].Lease.Address}");
                held.RemoveAt(i);
            }
            // An exhausted pool (dead holders not collected yet) is part of the race: try again later.
            if (held.Count < count && pool.TryAcquire("agent cycle", out var lease, out _))
            {
                log.WriteLine($"take {lease.Address}");
                held.Add((lease, now + random.Next(1, 300)));
            }
            // The workload's own pace, not a wait for a condition.
            Thread.Sleep(random.Next(0, 4));
        }
    }
}
