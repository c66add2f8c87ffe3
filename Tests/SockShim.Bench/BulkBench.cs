using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

/// <summary>Throughput of one TCP connection over loopback: the data path, where SockShim adds
/// nothing after connect. bench/all.sh runs it plain and under `sockshim run` in turn.</summary>
internal static class BulkBench
{
    public static int Run(double seconds)
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        long received = 0;
        var reader = new Thread(() =>
        {
            using var peer = listener.Accept();
            var buffer = new byte[1 << 20];
            int n;
            while ((n = peer.Receive(buffer)) > 0) received += n;
        });
        reader.Start();
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        client.Connect(listener.LocalEndPoint!);
        var local = client.LocalEndPoint;
        var chunk = new byte[1 << 20];
        var sw = Stopwatch.StartNew();
        var until = TimeSpan.FromSeconds(seconds);
        while (sw.Elapsed < until) client.Send(chunk);
        client.Shutdown(SocketShutdown.Send);
        reader.Join();
        double elapsed = sw.Elapsed.TotalSeconds;
        Console.WriteLine($"bulk {received / elapsed / 1e6:F0} MB/s from {local}");
        return 0;
    }
}
