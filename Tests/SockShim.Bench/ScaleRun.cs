using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

/// <summary>
/// The scale run's two sides. A server worker listens on the shared ip:port with SO_REUSEPORT
/// (the kernel spreads connections over the workers) and holds every connection it accepts; a
/// client opens N connections to that one ip:port and holds them. Both print counts, and exit
/// when stdin closes. One process holds at most 20,000 descriptors here, hence several of each.
/// </summary>
internal static class ScaleRun
{
    private const int SO_REUSEPORT = 15, SOL_SOCKET = 1;

    public static int Server(IPEndPoint listen)
    {
        using var listener = new Socket(listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        listener.SetRawSocketOption(SOL_SOCKET, SO_REUSEPORT, BitConverter.GetBytes(1));
        listener.Bind(listen);
        listener.Listen(65535);
        var held = new List<Socket>();
        int errors = 0;
        var done = Task.Run(() => Console.In.ReadToEnd());
        Console.WriteLine("listening");
        var report = Stopwatch.StartNew();
        listener.Blocking = false;
        while (!done.IsCompleted)
        {
            try
            {
                held.Add(listener.Accept());
                continue;
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.WouldBlock) { }
            catch (SocketException) { errors++; }
            if (report.ElapsedMilliseconds > 500)
            {
                Console.WriteLine($"accepted {held.Count} errors {errors}");
                report.Restart();
            }
            listener.Poll(100_000, SelectMode.SelectRead);
        }
        Console.WriteLine($"accepted {held.Count} errors {errors}");
        foreach (var s in held) s.Dispose();
        return 0;
    }

    public static int Client(IPEndPoint server, int count)
    {
        var held = new List<Socket>(count);
        var errors = new Dictionary<SocketError, int>();
        string? first = null;
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < count; i++)
        {
            var s = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                s.Connect(server);
                held.Add(s);
            }
            catch (SocketException ex)
            {
                s.Dispose();
                errors[ex.SocketErrorCode] = errors.GetValueOrDefault(ex.SocketErrorCode) + 1;
                first ??= $"{ex.SocketErrorCode}: {ex.Message}";
                // The ceiling does not lift by trying harder: stop after a run of failures.
                if (errors.Values.Sum() >= 200) break;
            }
        }
        double seconds = sw.Elapsed.TotalSeconds;
        long rss = Environment.WorkingSet / (1 << 20);
        var sources = held.Select(s => ((IPEndPoint)s.LocalEndPoint!).Address).Distinct().Count();
        Console.WriteLine($"established {held.Count} of {count} in {seconds:F1} s, errors {errors.Values.Sum()}{(first is null ? "" : $" (first: {first})")}, distinct source addresses {sources}, rss {rss} MB");
        Console.Out.Flush();
        Console.In.ReadToEnd();
        foreach (var s in held) s.Dispose();
        return 0;
    }
}
