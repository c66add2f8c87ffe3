using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Tmds.Linux;
using static Tmds.Linux.LibC;

/// <summary>
/// The scale run's two sides. A server worker listens on the shared ip:port with SO_REUSEPORT
/// (the kernel spreads connections over the workers) and holds every connection it accepts; a
/// client opens N connections to that one ip:port and holds them. Both print counts, and exit
/// when stdin closes. One process holds at most 20,000 descriptors here, hence several of each.
/// What a held connection costs each side is printed too (RSS and managed heap), since at a
/// million connections the bytes per connection decide whether the host can hold them.
/// </summary>
internal static unsafe class ScaleRun
{
    private const int SO_REUSEPORT = 15, SOL_SOCKET_ = 1;

    /// <summary>The server holds bare descriptors, 4 bytes each: a Socket object per accepted
    /// connection (with its handle, endpoints and finaliser registration) would be the bench's own
    /// memory, not a cost of serving, and at a million connections it was hundreds of MB.</summary>
    public static int Server(IPEndPoint listen)
    {
        using var listener = new Socket(listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        listener.SetRawSocketOption(SOL_SOCKET_, SO_REUSEPORT, BitConverter.GetBytes(1));
        listener.Bind(listen);
        listener.Listen(65535);
        listener.Blocking = false;
        int fd = (int)listener.Handle;
        var held = new int[1024];
        int count = 0, errors = 0;
        var done = Task.Run(() => Console.In.ReadToEnd());
        Console.WriteLine($"listening rss {Rss()} KB");
        Console.Out.Flush();
        var report = Stopwatch.StartNew();
        while (!done.IsCompleted)
        {
            int conn = accept4(fd, null, null, SOCK_CLOEXEC);
            if (conn >= 0)
            {
                if (count == held.Length) Array.Resize(ref held, held.Length * 2);
                held[count++] = conn;
                continue;
            }
            int error = errno;
            if (error != EAGAIN && error != EINTR) errors++;
            if (report.ElapsedMilliseconds > 500)
            {
                Console.WriteLine($"accepted {count} errors {errors} rss {Rss()} KB");
                report.Restart();
            }
            // EMFILE leaves the connection queued: wait rather than spin on it.
            listener.Poll(error == EAGAIN ? 100_000 : 10_000, SelectMode.SelectRead);
        }
        Console.WriteLine($"accepted {count} errors {errors} rss {Rss()} KB");
        for (int i = 0; i < count; i++) close(held[i]);
        return 0;
    }

    /// <summary>The client connects through Socket (the API `sockshim run` gives each connection
    /// its own address under) and holds the Socket objects, as an app would.</summary>
    public static int Client(IPEndPoint server, int count)
    {
        var held = new List<Socket>(count);
        var errors = new Dictionary<SocketError, int>();
        string? first = null;
        long rss0 = Rss(), managed0 = 0;
        var sw = Stopwatch.StartNew();
        var progress = Stopwatch.StartNew();
        for (int i = 0; i < count; i++)
        {
            var s = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                s.Connect(server);
                held.Add(s);
                // After the first connection SockShim's stack is set up: the baseline the rest adds to.
                if (held.Count == 1) { managed0 = GC.GetTotalMemory(true); rss0 = Rss(); }
            }
            catch (SocketException ex)
            {
                s.Dispose();
                errors[ex.SocketErrorCode] = errors.GetValueOrDefault(ex.SocketErrorCode) + 1;
                first ??= $"{ex.SocketErrorCode}: {ex.Message}";
                // The ceiling does not lift by trying harder: stop after a run of failures.
                if (errors.Values.Sum() >= 200) break;
            }
            if (progress.ElapsedMilliseconds >= 1000) { Console.WriteLine($"progress {held.Count}"); progress.Restart(); }
        }
        double seconds = sw.Elapsed.TotalSeconds;
        long managed = GC.GetTotalMemory(true);
        long rss = Rss();
        int n = Math.Max(held.Count - 1, 1);
        Console.WriteLine($"established {held.Count} of {count} in {seconds:F1} s, errors {errors.Values.Sum()}{(first is null ? "" : $" (first: {first})")}, " +
                          $"distinct source addresses {DistinctSources(held)}, rss {rss} KB, rss after the first {rss0} KB, shared {Status("RssFile:") + Status("RssShmem:")} KB, " +
                          $"managed per connection {(managed - managed0) / n} B, managed {managed / 1024} KB");
        Console.Out.Flush();
        Console.In.ReadToEnd();
        foreach (var s in held) s.Dispose();
        return 0;
    }

    /// <summary>Counted from getsockname on each descriptor, so that asking does not make .NET
    /// cache an endpoint object in every Socket (which the memory figures above would not show).</summary>
    private static int DistinctSources(List<Socket> held)
    {
        var addresses = new uint[held.Count];
        int known = 0;
        foreach (var s in held)
        {
            sockaddr_in sin;
            socklen_t len = (socklen_t)sizeof(sockaddr_in);
            if (getsockname((int)s.Handle, (sockaddr*)&sin, &len) == 0) addresses[known++] = *(uint*)sin.sin_addr.s_addr;
        }
        Array.Sort(addresses, 0, known);
        int distinct = 0;
        for (int i = 0; i < known; i++) if (i == 0 || addresses[i] != addresses[i - 1]) distinct++;
        return distinct;
    }

    /// <summary>The process's private resident memory in KB (RssAnon: heap, stacks, JIT code). Its
    /// shared pages (the runtime's files, SockShim's claim table in /dev/shm) are the same pages in
    /// every process, so VmRSS summed over processes would count them once per process.</summary>
    // Read without allocating: a server worker reports it twice a second for minutes, and the
    // garbage of a StreamReader per report (some 15 KB) would show as memory per connection.
    private static long Rss()
    {
        const int size = 4096;
        byte* buffer = stackalloc byte[size];
        int fd;
        fixed (byte* path = "/proc/self/status\0"u8) fd = open(path, O_RDONLY | O_CLOEXEC, 0);
        if (fd < 0) return -1; // at the descriptor limit: unknown, the run goes on
        int n = (int)read(fd, buffer, size);
        close(fd);
        var text = new ReadOnlySpan<byte>(buffer, Math.Max(n, 0));
        int at = text.IndexOf("RssAnon:"u8);
        if (at < 0) return -1;
        long kb = 0;
        foreach (byte c in text[(at + 8)..])
        {
            if (c is >= (byte)'0' and <= (byte)'9') kb = kb * 10 + (c - '0');
            else if (c == '\n') break;
        }
        return kb;
    }

    /// <summary>A "Name: N kB" line of /proc/self/status, in KB.</summary>
    private static long Status(string name)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith(name)) return long.Parse(line.AsSpan(name.Length).Trim().TrimEnd("kB").Trim());
        }
        catch (IOException) { }
        return -1;
    }
}
