using SockShim.Stack;
using SockShim.Stack.Configuration;
using SockShim.Stack.Errors;

// Per-socket cost of taking an address and giving it back, with the pool and provisioner that
// SOCKSHIM_* configure (bench/provisioners.sh runs it for each provisioner).
//   SockShim.Bench acquire-release N [label] [target-ns] [raw-ns [usable-ns]] : the raw-netlink medians
//     of the same run add the ratios to them (target <= 1.2x of the bare add+del)
//   SockShim.Bench dhcp N IFACE : time per lease against the DHCP server on IFACE (bench/dhcp.sh)
//   SockShim.Bench dhcp-rate N [PARALLEL=64] : leases per second for N clients, and one at a time (bench/dhcp-ha.sh)
//   SockShim.Bench raw-netlink N [usable] : the kernel's add+del of the same pool's addresses, nothing of SockShim around it (bench/provisioners.sh)
//   SockShim.Bench refresh IFACE FIRST-ADDRESS COUNT : a renewal's lifetime refresh per address (bench/provisioners.sh)
//   SockShim.Bench allocator SECONDS THREADS [PROCESSES] : claims+releases per second, duplicates checked
//   SockShim.Bench bulk SECONDS : one loopback TCP connection's throughput (run plain and under sockshim run)
//   SockShim.Bench scale-server LISTEN / scale-client SERVER N : the scale run, up to a million connections (bench/scale.sh)
if (args.ElementAtOrDefault(0) == "dhcp") return DhcpBench.Run(int.Parse(args[1]), args[2]);
if (args.ElementAtOrDefault(0) == "dhcp-rate") return DhcpRateBench.Run(int.Parse(args[1]), args.Length > 2 ? int.Parse(args[2]) : 64);
if (args.ElementAtOrDefault(0) == "raw-netlink") return RawNetlinkBench.Run(int.Parse(args[1]), args.ElementAtOrDefault(2) == "usable");
if (args.ElementAtOrDefault(0) == "refresh") return RefreshBench.Run(args[1], System.Net.IPAddress.Parse(args[2]), int.Parse(args[3]));
if (args.ElementAtOrDefault(0) is "allocator" or "allocator-worker") return AllocatorBench.Run(args);
if (args.ElementAtOrDefault(0) == "bulk") return BulkBench.Run(double.Parse(args[1]));
if (args.ElementAtOrDefault(0) == "scale-server") return ScaleRun.Server(System.Net.IPEndPoint.Parse(args[1]));
if (args.ElementAtOrDefault(0) == "scale-client") return ScaleRun.Client(System.Net.IPEndPoint.Parse(args[1]), int.Parse(args[2]));
if (args.Length < 2 || args[0] != "acquire-release" || !int.TryParse(args[1], out int n) || n < 1)
{
    Console.Error.WriteLine("usage: SockShim.Bench acquire-release N [label] [target-ns]");
    return 2;
}
string label = args.ElementAtOrDefault(2) ?? "pool";
double? target = args.Length > 3 ? double.Parse(args[3]) : null;
double? raw = args.Length > 4 ? double.Parse(args[4]) : null;
double? usable = args.Length > 5 ? double.Parse(args[5]) : null;
using var stack = AddressStack.Create(SettingsLoader.Load());
var pool = stack.Pools[0];

void Round(int count)
{
    for (int i = 0; i < count; i++)
    {
        if (!pool.TryAcquire("bench", out var lease, out var error)) throw new InvalidOperationException(error!.Message);
        lease.Release();
    }
}

double median = Median.OfFive(Round, n);
string verdict = target is { } t ? $" (target <= {Format(t)}: {median / t:F2}x, {(median <= t ? "MET" : "MISSED")})" : "";
if (raw is { } r) verdict += $"; {median / r:F2}x the raw kernel add+del above (target <= 1.2x: {(median <= 1.2 * r ? "MET" : "MISSED")})";
if (usable is { } u) verdict += $", {median / u:F2}x the raw add, route, del";
Console.WriteLine($"{label,-22} acquire+release {Format(median)} per socket, median of 5 x {n}{verdict}");
return 0;

static string Format(double ns) => ns >= 1000 ? $"{ns / 1000:F2} us" : $"{ns:F0} ns";
