using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using SockShim.Stack;
using SockShim.Stack.Configuration;
using SockShim.Stack.Errors;
using SockShim.Stack.Pools;

/// <summary>
/// The two sides of the table fuzz test, both run as one unprivileged account.
///   fuzz-churn SECONDS PORT : takes and gives back addresses of the pool for SECONDS. Each
///       address held is proven exclusive from outside the table: a TCP listener on ADDRESS:PORT
///       (a second live holder of the same address cannot bind it). Prints "dup ADDRESS" for a
///       listener that could not bind, "damaged MESSAGE" for the first fail-closed error, and at
///       the end "acquired N dups D damaged E exhausted X other O".
///   fuzz-table PATH SECONDS : for SECONDS, rewrites random bytes of the table at PATH (the
///       header's counters and hints, every slot word) and forges the owner word of live claims
///       (0, the releasing mark, a dead holder's token, noise); every half second breaks the
///       header's magic for a moment and restores it. Prints "writes N forged F breaks B".
/// </summary>
internal static class TableFuzz
{
    public static int Churn(double seconds, int port)
    {
        var stack = AddressStack.Create(SettingsLoader.Load());
        var pool = stack.Pools[0];
        var held = new Queue<(Lease Lease, Socket Listener)>();
        int acquired = 0, dups = 0, damaged = 0, exhausted = 0, other = 0;
        var until = Stopwatch.StartNew();
        while (until.Elapsed.TotalSeconds < seconds)
        {
            if (!pool.TryAcquire("fuzz churn", out var lease, out var error))
            {
                switch (error!.Code)
                {
                    case StackErrorCode.TableDamaged:
                        if (damaged++ == 0) Console.WriteLine($"damaged {error.Message}");
                        break;
                    case StackErrorCode.PoolExhausted: exhausted++; break;
                    default:
                        other++;
                        Console.WriteLine($"other {error.Code} {error.Message}");
                        break;
                }
                GiveBack(held, held.Count);
                Thread.Sleep(1); // a failed claim is cheap; do not spin the table
                continue;
            }
            acquired++;
            var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                listener.Bind(new IPEndPoint(lease.Address, port));
                listener.Listen(1);
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.AddressAlreadyInUse)
            {
                dups++;
                Console.WriteLine($"dup {lease.Address}");
            }
            held.Enqueue((lease, listener));
            // Hold up to four at once, so holders of different processes overlap.
            if (held.Count > Random.Shared.Next(1, 5)) GiveBack(held, 1);
        }
        GiveBack(held, held.Count);
        Console.WriteLine($"acquired {acquired} dups {dups} damaged {damaged} exhausted {exhausted} other {other}");
        stack.Dispose();
        return 0;
    }

    private static void GiveBack(Queue<(Lease Lease, Socket Listener)> held, int count)
    {
        for (int i = 0; i < count && held.TryDequeue(out var h); i++)
        {
            h.Listener.Dispose(); // the listener leaves the address before the address leaves the holder
            h.Lease.Release();
        }
    }

    // Values a fuzzer tries first (as AFL does): a free slot, the releasing mark, a token of a
    // pid this machine never gives, marked with this namespace (a holder that is certainly gone),
    // anything.
    private static readonly long[] s_interesting = [0, -1, (4_194_303L << 32) | 12345 | SockShim.Stack.Claims.ProcessIdentity.NamespaceMark(SockShim.Stack.Claims.ProcessIdentity.PidNamespace), long.MaxValue];

    public static int Table(string path, double seconds)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        long length = file.Length;
        int slots = (int)((length - 64) / 64);
        var header = new byte[16];
        file.ReadExactly(header);
        int writes = 0, forged = 0, breaks = 0;
        var clock = Stopwatch.StartNew();
        var nextBreak = TimeSpan.FromMilliseconds(500);
        Span<byte> noise = stackalloc byte[8];
        Span<byte> word = stackalloc byte[8];
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            if (Random.Shared.Next(2) == 0)
            {
                // Anything past the magic, version and slot count: counters, hints, every slot word.
                long offset = Random.Shared.NextInt64(16, length - 8);
                Random.Shared.NextBytes(noise);
                file.Position = offset;
                file.Write(noise[..Random.Shared.Next(1, 9)]);
                writes++;
            }
            else
            {
                // The owner word of a live claim, forged: what would take an address from its holder.
                int start = Random.Shared.Next(slots);
                for (int i = 0; i < slots; i++)
                {
                    long offset = 64 + 64L * ((start + i) % slots);
                    file.Position = offset;
                    file.ReadExactly(word);
                    if (BitConverter.ToInt64(word) is 0 or -1) continue;
                    long value = s_interesting[Random.Shared.Next(s_interesting.Length)];
                    if (value == long.MaxValue) value = Random.Shared.NextInt64();
                    file.Position = offset;
                    file.Write(BitConverter.GetBytes(value));
                    forged++;
                    break;
                }
            }
            file.Flush();
            if (clock.Elapsed >= nextBreak)
            {
                // The header itself, broken for a moment: the pool must fail closed meanwhile.
                file.Position = 0;
                Random.Shared.NextBytes(noise);
                file.Write(noise);
                file.Flush();
                breaks++;
                Thread.Sleep(150);
                file.Position = 0;
                file.Write(header);
                file.Flush();
                nextBreak = clock.Elapsed + TimeSpan.FromMilliseconds(500);
            }
            Thread.Sleep(10); // the fuzzer's pace, not a wait for a condition
        }
        file.Position = 0;
        file.Write(header);
        Console.WriteLine($"writes {writes} forged {forged} breaks {breaks}");
        return 0;
    }
}
