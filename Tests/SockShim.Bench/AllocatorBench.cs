using System.Diagnostics;
using System.IO.MemoryMappedFiles;
using SockShim.Stack.Addressing;
using SockShim.Stack.Claims;
using SockShim.Stack.Configuration;
using SockShim.Stack.Policy;
using SockShim.Stack.Pools;

/// <summary>
/// Claims+releases per second on one host-wide table from T threads in P processes, with a
/// duplicate check: after each claim a thread marks the slot in a shared witness map by
/// compare-and-swap; finding it already marked means two holders at once.
/// </summary>
internal static unsafe class AllocatorBench
{
    private const int Slots = 65534;

    public static int Run(string[] args)
    {
        double seconds = double.Parse(args[1]);
        int threads = int.Parse(args[2]);
        int processes = args.Length > 3 ? int.Parse(args[3]) : 1;
        string dir = args.Length > 4 ? args[4] : Path.Combine("/dev/shm", $"sockshim-bench-alloc-{Environment.ProcessId}");
        bool worker = args[0] == "allocator-worker";
        if (!worker) Directory.CreateDirectory(dir);
        try
        {
            long ops, dups;
            if (processes == 1 || worker) (ops, dups) = Work(dir, seconds, threads);
            else (ops, dups) = Spawn(dir, seconds, threads, processes);
            if (worker)
            {
                Console.WriteLine($"{ops} {dups}");
                return 0;
            }
            double rate = ops / seconds / 1e6;
            string who = processes > 1 ? $"{processes} processes x {threads} thread(s)" : $"{threads} thread(s)";
            string target = processes == 1 && threads == 1 ? $" (target >= 5 M/s on 1 thread: {(rate >= 5 ? "MET" : "MISSED")})" : "";
            Console.WriteLine($"allocator {who,-26} {rate,6:F2} M claims+releases/s{target}, duplicates {dups} (target 0: {(dups == 0 ? "MET" : "MISSED")})");
            return dups == 0 ? 0 : 1;
        }
        finally
        {
            if (!worker) Directory.Delete(dir, true);
        }
    }

    private static (long, long) Spawn(string dir, double seconds, int threads, int processes)
    {
        // The table and witness exist before any worker starts, so none sees a half-made file.
        using (LeaseTable.Open(Path.Combine(dir, "alloc.leases"), Slots)) { }
        var workers = Enumerable.Range(0, processes).Select(_ =>
        {
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true };
            foreach (var a in new[] { typeof(AllocatorBench).Assembly.Location, "allocator-worker", seconds.ToString(), threads.ToString(), "1", dir }) psi.ArgumentList.Add(a);
            return Process.Start(psi)!;
        }).ToList();
        long ops = 0, dups = 0;
        foreach (var w in workers)
        {
            var fields = w.StandardOutput.ReadToEnd().Trim().Split(' ');
            w.WaitForExit();
            ops += long.Parse(fields[0]);
            dups += long.Parse(fields[1]);
        }
        return (ops, dups);
    }

    private static (long, long) Work(string dir, double seconds, int threads)
    {
        using var table = LeaseTable.Open(Path.Combine(dir, "alloc.leases"), Slots);
        string witnessPath = Path.Combine(dir, "witness");
        using var stream = new FileStream(witnessPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite);
        if (stream.Length < Slots * 4L) stream.SetLength(Slots * 4L);
        using var map = MemoryMappedFile.CreateFromFile(stream, null, Slots * 4L, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: true);
        using var view = map.CreateViewAccessor(0, Slots * 4L);
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        int* witness = (int*)p;
        long owner = (long)Environment.ProcessId << 32 | 1;
        long ops = 0, dups = 0;
        var start = new Barrier(threads);
        var all = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            int me = Environment.ProcessId * 64 + t + 1;
            long n = 0, d = 0;
            start.SignalAndWait();
            var until = Stopwatch.GetTimestamp() + (long)(seconds * Stopwatch.Frequency);
            while (true)
            {
                // The clock is read once per 1,024 rounds: it costs more than a round.
                for (int i = 0; i < 1024; i++)
                {
                    int slot = table.Claim(AllocationStrategy.LeastRecentlyReleased, owner);
                    if (slot < 0) continue;
                    if (Interlocked.CompareExchange(ref witness[slot], me, 0) != 0) d++;
                    else Volatile.Write(ref witness[slot], 0);
                    table.Release(slot, owner);
                    n++;
                }
                if (Stopwatch.GetTimestamp() > until) break;
            }
            Interlocked.Add(ref ops, n);
            Interlocked.Add(ref dups, d);
        })).ToList();
        all.ForEach(t => t.Start());
        all.ForEach(t => t.Join());
        view.SafeMemoryMappedViewHandle.ReleasePointer();
        return (ops, dups);
    }
}
