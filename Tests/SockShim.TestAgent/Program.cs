using System.Net;
using SockShim.Stack;
using SockShim.Stack.Claims;
using SockShim.Stack.Configuration;
using SockShim.Stack.Errors;
using SockShim.Stack.Pools;

// A second process for the host-wide tests. It takes its pool from SOCKSHIM_* like any app.
//   churn N     : N acquisitions with a start barrier, each reported; then keeps a few (see Churn).
//   cycle N LOG : takes and gives back up to N addresses at a time until killed, logging each (see Cycle).
//   hold N      : acquires N leases, prints them, "held", then waits to be killed. With
//                 AGENT_NONDUMPABLE=1 it first makes itself non-dumpable (see Hidden).
//   leak N      : acquires N leases and exits without releasing them.
//   one-by-one N : N times: acquires a lease, prints "lease A", waits for a line on stdin,
//                 releases it and prints "released A" once the release returned.
//   berkeley-dhcp N SERVER : N TUPLE_DHCP descriptors through the Berkeley API (see BerkeleyDhcp).
//   traffic SERVER FRONT-END [POOL] : one TCP connection and one datagram (see MarkedTraffic).
//   wildcard SERVER : sockets that bind the wildcard (see WildcardBinds).
//   bound-outside SERVER : sockets bound where Socket does not see it (see BoundOutside).
//   use-after-dispose SERVER N : sockets used after Dispose (see BoundOutside.UseAfterDispose).
//   fd-reuse : a descriptor closed under a connect, its number reused (see DescriptorReuse).
//   races N : a connect racing Dispose, two first sends at once (see SocketRaces).
//   fake-dhcp-server DEV SERVERID FIRST DROP% : a hostile DHCP server (see FakeDhcpServer).
//   rogue-dhcp-server DEV SERVERID OFFER MASK ROUTER : offers one bad address first (see RogueDhcpServer).
//   short-lease-dhcp-server DEV SERVERID FIRST LEASE T1|- : leases of LEASE s with that T1 (see ShortLeaseDhcpServer).
//   attempt-sockets SECONDS SERVER : UDP tuple sockets one after another for SECONDS (see SocketAttempts).
//   hostile-dhcp DEV OWN SERVER OTHER SECONDS : forged answers to every renewal on the LAN (see HostileDhcpHost).
//   unix-connections SOCKET N [partial|chatty|bogus] : N hostile connections to a helper (see UnixConnections).
//   sockets N SERVER [tcp|udp] [plain] : N AF_INET_TUPLE sockets (plain: ordinary sockets, for a run under the launcher), each connected (or sending a datagram) to
//                 SERVER; prints "socket <local> lease-expires <time>" for each and "held"; then
//                 waits for a line on stdin: "close" disposes them all, prints "closed" and exits;
//                 "use" sends on each socket and prints "ok <local>" or "error <local> <SocketError> <message>".
//   steps N SERVER : N ordinary connections opened and closed on command, for dotnet-counters (see Steps).
//   host-view ADDRESS...: what the DHCP offer check reads of this host (its network namespace):
//                 "gateway G" for each route's gateway, then "local A true|false" for each address.
//   gateway-watch GATEWAY ADDRESS INTERFACE GATEWAY2: a kept gateway view (HostGateways) read around `ip`
//                 changes of this namespace: a route via GATEWAY added, ADDRESS added, the route removed,
//                 a flood of address changes that overflows the view's queue, a route via GATEWAY2.
//   fuzz-churn SECONDS PORT / fuzz-table PATH SECONDS : the table fuzz test (see TableFuzz).
//   spawn COMMAND ARGS... : starts COMMAND as a child with this process's environment, waits for
//                 it, prints "child exit N" and exits 0 (a parent started by the launcher).
var verb = args.ElementAtOrDefault(0) ?? "";
if (verb == "spawn")
{
    using var child = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo(args[1], args.Skip(2)) { UseShellExecute = false })!;
    if (!child.WaitForExit(TimeSpan.FromMinutes(2))) { child.Kill(); Console.WriteLine("child killed after 2 minutes"); return 1; }
    Console.WriteLine($"child exit {child.ExitCode}");
    return 0;
}
if (verb == "fuzz-churn") return TableFuzz.Churn(double.Parse(args[1]), int.Parse(args[2]));
if (verb == "fuzz-table") return TableFuzz.Table(args[1], double.Parse(args[2]));
if (verb == "traffic") return MarkedTraffic.Run(IPEndPoint.Parse(args[1]), args[2], args.ElementAtOrDefault(3));
if (verb == "wildcard") return WildcardBinds.Run(IPEndPoint.Parse(args[1]));
if (verb == "bound-outside") return BoundOutside.Run(IPEndPoint.Parse(args[1]));
if (verb == "races") return SocketRaces.Run(int.Parse(args[1]));
if (verb == "fd-reuse") return DescriptorReuse.Run();
if (verb == "use-after-dispose") return BoundOutside.UseAfterDispose(IPEndPoint.Parse(args[1]), int.Parse(args[2]));
if (verb == "hostile-dhcp") return HostileDhcpHost.Run(args[1], IPAddress.Parse(args[2]), IPAddress.Parse(args[3]), IPAddress.Parse(args[4]), double.Parse(args[5]));
if (verb == "unix-connections") return UnixConnections.Run(args[1], int.Parse(args[2]), args.ElementAtOrDefault(3) ?? "");
if (verb == "rogue-dhcp-server") return RogueDhcpServer.Run(args[1], IPAddress.Parse(args[2]), IPAddress.Parse(args[3]), IPAddress.Parse(args[4]), IPAddress.Parse(args[5]));
if (verb == "short-lease-dhcp-server") return ShortLeaseDhcpServer.Run(args[1], IPAddress.Parse(args[2]), IPAddress.Parse(args[3]), uint.Parse(args[4]), args[5] == "-" ? null : uint.Parse(args[5]));
if (verb == "attempt-sockets") return SocketAttempts.Run(double.Parse(args[1]), IPEndPoint.Parse(args[2]));
if (verb == "steps") return Steps.Run(int.Parse(args[1]), IPEndPoint.Parse(args[2]));
if (verb == "host-view")
{
    var asked = args.Skip(1).Select(IPAddress.Parse).ToList();
    foreach (var g in SockShim.Stack.Dhcp.HostView.Read(asked[0]).Gateways.Select(g => g.ToString()).Order()) Console.WriteLine($"gateway {g}");
    foreach (var address in asked) Console.WriteLine($"local {address} {SockShim.Stack.Dhcp.HostView.Read(address).Addresses.Contains(address).ToString().ToLowerInvariant()}");
    return 0;
}
if (verb == "gateway-watch")
{
    // The kept view before and after this namespace's routes change (by `ip`, as an admin
    // would), and after an address is added (a local-table route: no reason to read again).
    using var watched = SockShim.Stack.Provisioning.HostGateways.Watch();
    void Show(string when) => Console.WriteLine($"{when} reads={watched.Reads} gateways={string.Join(",", watched.Current().Select(g => g.ToString()).Order())} reads={watched.Reads}");
    void Ip(string arguments) => System.Diagnostics.Process.Start("ip", arguments)!.WaitForExit();
    Show("first");
    Show("again");
    Ip($"route add 203.0.113.0/24 via {args[1]}");
    Show("added");
    Ip($"addr add {args[2]}/32 dev {args[3]}");
    Show("address");
    Ip($"route del 203.0.113.0/24 via {args[1]}");
    Show("removed");
    // Far more notifications than the socket's queue holds (each address added and removed
    // twice: local-table routes), then a route through a second gateway: still heard.
    string batch = Path.Combine(Path.GetTempPath(), $"sockshim-flood-{Guid.NewGuid():N}");
    using (var lines = new StreamWriter(new FileStream(batch, FileMode.CreateNew)))
        for (int round = 0; round < 2; round++)
            foreach (string net in (string[])["198.51.100", "203.0.113"])
            {
                for (int i = 1; i < 255; i++) lines.WriteLine($"addr add {net}.{i}/32 dev {args[3]}");
                for (int i = 1; i < 255; i++) lines.WriteLine($"addr del {net}.{i}/32 dev {args[3]}");
            }
    Ip($"-batch {batch}");
    File.Delete(batch);
    Show("flooded");
    Ip($"route add 203.0.113.0/25 via {args[4]}");
    Show("after");
    return 0;
}
if (verb == "fake-dhcp-server") return FakeDhcpServer.Run(args[1], IPAddress.Parse(args[2]), IPAddress.Parse(args[3]), int.Parse(args[4]));
int count = int.Parse(args.ElementAtOrDefault(1) ?? "0");
if (verb == "berkeley-dhcp") return BerkeleyDhcp.Run(count, System.Net.IPEndPoint.Parse(args[2]));
if (verb == "sockets") return TupleSockets.Run(count, System.Net.IPEndPoint.Parse(args[2]), args.ElementAtOrDefault(3) == "udp", args.ElementAtOrDefault(4) == "plain");
var stack = AddressStack.Create(SettingsLoader.Load());
var pool = stack.Pools[0];

switch (verb)
{
    case "churn":
        return Churn.Run(pool, count);
    case "cycle":
        return Cycle.Run(pool, count, args[2]);
    case "hold":
    {
        if (Environment.GetEnvironmentVariable("AGENT_NONDUMPABLE") == "1") Hidden.MakeNonDumpable();
        for (int i = 0; i < count; i++)
        {
            if (!pool.TryAcquire("agent hold", out var lease, out var error)) { Console.WriteLine($"error {error}"); return 1; }
            Console.WriteLine($"lease {lease.Address}");
        }
        Console.WriteLine("held");
        Console.Out.Flush();
        Thread.Sleep(TimeSpan.FromMinutes(2));
        return 0;
    }
    case "one-by-one":
    {
        for (int i = 0; i < count; i++)
        {
            if (!pool.TryAcquire("agent one-by-one", out var lease, out var error)) { Console.WriteLine($"error {error}"); return 1; }
            Console.WriteLine($"lease {lease.Address}");
            if (Console.ReadLine() is null) return 1;
            lease.Release();
            Console.WriteLine($"released {lease.Address}");
        }
        return 0;
    }
    case "stuck-release":
    {
        // Takes N leases and begins releasing each (its slot marked as being released by this
        // process), then waits to be killed before the release ends.
        for (int i = 0; i < count; i++)
        {
            if (!pool.TryAcquire("agent stuck", out var lease, out var error)) { Console.WriteLine($"error {error}"); return 1; }
            if (!pool.Table.BeginRelease(lease.Sourced.Slot, ProcessIdentity.Current)) { Console.WriteLine("error not mine"); return 1; }
            Console.WriteLine($"releasing {lease.Address}");
        }
        Console.WriteLine("held");
        Console.Out.Flush();
        Thread.Sleep(TimeSpan.FromMinutes(2));
        return 0;
    }
    case "leak":
    {
        // Takes leases and returns from Main without releasing them: process exit must.
        for (int i = 0; i < count; i++) pool.TryAcquire("agent leak", out _, out _);
        Console.WriteLine($"leaked {pool.LiveLeases.Count}");
        Environment.Exit(0);
        return 0;
    }
    case "dial":
    {
        // dial N SERVER: N times acquire an address, bind it and connect; prints each connect's time.
        var server = System.Net.IPEndPoint.Parse(args[2]);
        var sockets = new List<System.Net.Sockets.Socket>();
        for (int i = 0; i < count; i++)
        {
            if (!pool.TryAcquire("dial", out var lease, out var error)) { Console.WriteLine($"error {error}"); return 1; }
            var s = new System.Net.Sockets.Socket(server.AddressFamily, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
            s.Bind(new System.Net.IPEndPoint(lease.Address, 0));
            var sw = System.Diagnostics.Stopwatch.StartNew();
            s.Connect(server);
            Console.WriteLine($"connect {lease.Address} {sw.Elapsed.TotalMilliseconds:F1} ms");
            sockets.Add(s);
        }
        return 0;
    }
    default:
        Console.Error.WriteLine("usage: agent churn N | cycle N LOG | hold N | leak N | dial N SERVER");
        return 2;
}
