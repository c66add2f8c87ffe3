using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using SockShim.Stack.Pools;
using SockShim.Stack.Wire;
using Peer = SockShim.Interceptor.Host.HelperServer.Peer;

namespace SockShim.Interceptor.Host;

/// <summary>
/// One client's conversation with the helper (<see cref="HelperServer"/>): requests a line at a
/// time, at most <see cref="HelperMessage.MaxLine"/> bytes, each handed to the server and its
/// answer written back; the addresses the connection took are released when it ends, however
/// it ends. How long it may wait or stop mid-request, how long an answer may wait to be taken,
/// and how often it may be refused are bounded (<see cref="HelperLimits"/>): any local account
/// can connect.
/// </summary>
internal sealed class HelperConnection(Socket socket, Peer peer, HelperLimits limits, RefusalLog log, ILogger info,
    HelperConnection.Handler handle, CancellationToken stop)
{
    /// <summary>The server's answer to one request line of <paramref name="peer"/>'s.</summary>
    public delegate string Handler(Peer peer, ReadOnlySpan<byte> line, Dictionary<IPAddress, Lease> held, RefusalLog.OfConnection refusals);

    // A connection that holds no address (one of an account no grant names never does) has the
    // idle timeout in all, counted from when it last held one (or connected), however much it
    // says (asking what a pool is every few seconds kept one for ever); it is closed then, and
    // after MaxRefusedRequests refused requests (each an answer, and a line to log). One that
    // holds addresses may wait as long as it likes between requests: it is what keeps them.
    public async Task Serve()
    {
        var held = new Dictionary<IPAddress, Lease>();
        var buffer = new byte[HelperMessage.MaxLine + 1];
        int filled = 0;
        var refusals = new RefusalLog.OfConnection(log, peer, limits.MaxRefusedRequests);
        bool cutOff = false, spoke = false;
        long? emptySince = Environment.TickCount64;
        try
        {
            using var stream = new NetworkStream(socket, ownsSocket: true);
            while (true)
            {
                int newline = Array.IndexOf(buffer, (byte)'\n', 0, filled);
                if (newline < 0)
                {
                    if (filled == buffer.Length)
                    {
                        // No newline within the longest legal line: not a client of ours.
                        refusals.Last("{Peer}: refused a request longer than {Max} bytes; connection closed", peer, HelperMessage.MaxLine);
                        await Answer(stream, HelperMessage.Error(HelperMessage.BadRequest, $"requests are at most {HelperMessage.MaxLine} bytes"), Within(emptySince));
                        await HangUp(socket);
                        return;
                    }
                    emptySince = Holds(held) ? null : emptySince ?? Environment.TickCount64;
                    // Holding addresses it may wait as long as it likes, but a DHCP lease can end
                    // under it (a NAK, an expiry) and leave it holding nothing: so a wait is looked
                    // at again every idle timeout, and goes on only while it still holds one.
                    int n = await Read(stream, buffer.AsMemory(filled), Within(emptySince));
                    if (n < 0 && filled == 0 && emptySince is null) continue;
                    if (n < 0)
                    {
                        log.Warn("{Peer}: {What} for {Seconds} s; connection closed", peer,
                            filled > 0 ? "stopped in the middle of a request" : spoke ? "held no address" : "sent nothing while holding no address",
                            limits.IdleTimeout.TotalSeconds);
                        return;
                    }
                    if (n == 0) return;
                    filled += n;
                    spoke = true;
                    continue;
                }
                string answer = handle(peer, buffer.AsSpan(0, newline), held, refusals);
                Array.Copy(buffer, newline + 1, buffer, 0, filled - newline - 1);
                filled -= newline + 1;
                emptySince = Holds(held) ? null : emptySince ?? Environment.TickCount64;
                if (!await Answer(stream, answer, Within(emptySince)))
                {
                    log.Warn("{Peer}: did not take its answer within {Seconds} s; connection closed", peer, limits.IdleTimeout.TotalSeconds);
                    return;
                }
                // Refused as often as one may be: closed, unless it holds addresses (closing would
                // release them; its refusals are only counted then, and logged once).
                if (refusals.Exhausted && !Holds(held))
                {
                    cutOff = true;
                    await HangUp(socket);
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException) { }
        finally
        {
            refusals.Close(cutOff);
            int released = 0;
            Lease[] all;
            lock (held) all = held.Values.ToArray();
            foreach (var lease in all) if (lease.Release()) released++;
            if (released > 0) info.LogInformation("{Peer} disconnected: released its {Count} addresses", peer, released);
        }
    }

    private static bool Holds(Dictionary<IPAddress, Lease> held)
    {
        lock (held) return held.Values.Any(l => !l.IsReleased);
    }

    // What is left of the time a connection holding nothing has (from emptySince), else the idle
    // timeout (for the rest of a request, or an answer): an answer the client does not take (it
    // sends and never reads, until the socket's buffers are full) does not hold it longer either.
    private TimeSpan Within(long? emptySince) =>
        emptySince is { } since ? TimeSpan.FromMilliseconds(Math.Max(0, since + (long)limits.IdleTimeout.TotalMilliseconds - Environment.TickCount64)) : limits.IdleTimeout;

    /// <summary>Bytes read; 0 at the end of the stream; -1 when <paramref name="bound"/> passed first.</summary>
    private async Task<int> Read(NetworkStream stream, Memory<byte> into, TimeSpan bound)
    {
        if (bound <= TimeSpan.Zero) return -1;
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(stop);
        idle.CancelAfter(bound);
        try { return await stream.ReadAsync(into, idle.Token); }
        catch (OperationCanceledException) when (!stop.IsCancellationRequested) { return -1; }
    }

    // Closing with unread input makes the kernel reset the connection, and the client would lose
    // the answer: stop sending, swallow a little of what is left (bounded), then close.
    private static async Task HangUp(Socket socket)
    {
        socket.Shutdown(SocketShutdown.Send);
        var sink = new byte[4096];
        using var limit = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        try
        {
            for (int total = 0; total < 64 * 1024;)
            {
                int n = await socket.ReceiveAsync(sink, SocketFlags.None, limit.Token);
                if (n == 0) break;
                total += n;
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException) { }
    }

    /// <summary>Writes the answer; false when it was not taken within <paramref name="within"/>.</summary>
    private async Task<bool> Answer(NetworkStream stream, string line, TimeSpan within)
    {
        using var taken = CancellationTokenSource.CreateLinkedTokenSource(stop);
        taken.CancelAfter(within);
        try { await stream.WriteAsync(Encoding.ASCII.GetBytes(line + "\n"), taken.Token); }
        catch (OperationCanceledException) when (!stop.IsCancellationRequested) { return false; }
        return true;
    }
}
