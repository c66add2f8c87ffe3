using System.Diagnostics;
using SockShim.Stack.Pools;

/// <summary>
/// churn N: one of several processes that must never hold one address together. It makes N
/// acquisitions that succeeded (a refused attempt is not one), then keeps a few addresses held
/// until the test has seen every process's. Talks to the test through stdout, stdin and the FIFO
/// named by AGENT_BARRIER:
///   "ready"            pool open and warmed up (JIT, table mapped); then it opens the FIFO,
///                      which returns once the test opens its write end,
///   "waiting"          then it reads the FIFO, which returns in every process at the moment the
///                      test closes its end: the start barrier,
///   "got A" (N lines)  each address acquired, printed after the churn so printing does not slow it,
///   "window T0 T1"     CLOCK_MONOTONIC nanoseconds (shared by every process) of its first and
///                      last acquisition, so the test can prove the processes overlapped,
///   "holding A"        each address it keeps, "done N dups D"; then it waits for a line on stdin
///                      before giving them back.
/// While it churns each held address has a marker file in AGENT_MARKERS, created with O_EXCL:
/// finding it present means another process holds that address now ("dup A").
/// </summary>
internal static class Churn
{
    public const int Keep = 6;

    public static int Run(AddressPool pool, int count)
    {
        string markers = Environment.GetEnvironmentVariable("AGENT_MARKERS")!;
        string barrier = Environment.GetEnvironmentVariable("AGENT_BARRIER")!;
        if (!pool.TryAcquire("agent warm-up", out var warm, out var refused)) { Console.WriteLine($"error {refused}"); return 1; }
        warm.Release();
        Console.WriteLine("ready");
        using (var fifo = new FileStream(barrier, FileMode.Open, FileAccess.Read))
        {
            Console.WriteLine("waiting");
            fifo.ReadByte(); // end of file when the test closes its end
        }

        var got = new List<string>(count);
        var held = new List<(Lease Lease, string Marker)>();
        int dups = 0;
        long first = 0, last = 0;
        // Bounded: a pool that stays exhausted (held by something else) fails the test, not hangs it.
        var deadline = Stopwatch.StartNew();
        bool Take(out (Lease, string) taken)
        {
            taken = default;
            if (!pool.TryAcquire("agent churn", out var lease, out _)) return false;
            last = Stopwatch.GetTimestamp();
            if (first == 0) first = last;
            got.Add(lease.Address.ToString());
            string marker = Path.Combine(markers, lease.Address.ToString());
            try { using (File.Open(marker, FileMode.CreateNew)) { } }
            catch (IOException) { dups++; Console.WriteLine($"dup {lease.Address}"); marker = ""; }
            taken = (lease, marker);
            return true;
        }
        void GiveBack()
        {
            foreach (var (l, m) in held) { if (m != "") File.Delete(m); l.Release(); }
            held.Clear();
        }

        for (int i = 0; got.Count < count; i++)
        {
            if (deadline.Elapsed > TimeSpan.FromSeconds(60)) { Console.WriteLine($"error only {got.Count} of {count} acquired in 60 s"); return 1; }
            // Exhaustion under contention is allowed: give back what it holds and go on.
            if (!Take(out var taken)) { GiveBack(); continue; }
            held.Add(taken);
            if (held.Count >= 8 || i % 3 == 0) GiveBack();
        }
        GiveBack();
        long churnEnd = last;
        var kept = new List<(Lease, string)>();
        while (kept.Count < Keep)
        {
            if (deadline.Elapsed > TimeSpan.FromSeconds(60)) { Console.WriteLine($"error only {kept.Count} of {Keep} kept in 60 s"); return 1; }
            if (Take(out var taken)) kept.Add(taken);
            else Thread.Yield();
        }
        // The kept addresses count as acquisitions of their own, reported apart.
        got.RemoveRange(got.Count - Keep, Keep);
        foreach (var a in got) Console.WriteLine($"got {a}");
        Console.WriteLine($"window {first} {churnEnd}");
        foreach (var (l, _) in kept) Console.WriteLine($"holding {l.Address}");
        Console.WriteLine($"done {got.Count} dups {dups}");
        Console.Out.Flush();
        Console.ReadLine();
        held.AddRange(kept);
        GiveBack();
        return 0;
    }
}
