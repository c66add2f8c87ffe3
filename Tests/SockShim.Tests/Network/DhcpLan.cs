using System.Diagnostics;

namespace SockShim.Tests.Network;

/// <summary>
/// A DHCP server's LAN on one machine: namespace Server with a bridge, and client hosts each
/// joined to it by a veth pair (their end is eth0). The bridge has 192.0.2.254/24,
/// 198.51.100.254/24 and 203.0.113.254/24, so a server on it serves all three documentation
/// /24s (the only IPv4 space tests may use); client host i has 192.0.2.i/24 as its own address.
/// </summary>
internal sealed class DhcpLan : IDisposable
{
    public const string Bridge = "br0", ClientLink = "eth0";
    public static readonly string[] Subnets = ["192.0.2", "198.51.100", "203.0.113"];
    private readonly string _id = Guid.NewGuid().ToString("N")[..6];
    private readonly List<string> _namespaces = new();
    private readonly List<Process> _processes = new();

    public string Server => "sds" + _id;
    public IReadOnlyList<string> Clients { get; }
    public string Directory { get; }
    public string StateDirectory { get; }

    public DhcpLan(int clients)
    {
        Directory = Path.Combine(Path.GetTempPath(), "sockshim-dhcp-" + _id);
        StateDirectory = "/dev/shm/sockshim-test-dhcp-" + _id;
        System.IO.Directory.CreateDirectory(Directory);
        Clients = Enumerable.Range(1, clients).Select(i => $"sdc{i}{_id}").ToList();
        try { Build(); }
        catch
        {
            Dispose();
            throw;
        }
    }

    private void Build()
    {
        NeighbourLimits.EnsureRaised();
        Add(Server);
        TwoHosts.Ip($"-n {Server} link add {Bridge} type bridge forward_delay 0 stp_state 0");
        foreach (var subnet in Subnets) TwoHosts.Ip($"-n {Server} addr add {subnet}.254/24 dev {Bridge}");
        TwoHosts.Ip($"-n {Server} link set {Bridge} up");
        TwoHosts.Ip($"-n {Server} link set lo up");
        TwoHosts.Exec(Server, "sysctl", "-q", "-w", "net.core.somaxconn=65535");
        for (int i = 0; i < Clients.Count; i++)
        {
            Add(Clients[i]);
            Join(Clients[i], $"p{i + 1}", $"192.0.2.{i + 1}");
        }
    }

    // A host's eth0 on the bridge: a veth pair whose server end is bridge port <port>.
    private void Join(string ns, string port, string address)
    {
        TwoHosts.Ip($"link add {ClientLink} netns {ns} type veth peer name {port} netns {Server}");
        TwoHosts.Ip($"-n {Server} link set {port} master {Bridge}");
        TwoHosts.Ip($"-n {Server} link set {port} up");
        TwoHosts.Ip($"-n {ns} addr add {address}/24 dev {ClientLink}");
        TwoHosts.Ip($"-n {ns} link set {ClientLink} up");
        TwoHosts.Ip($"-n {ns} link set lo up");
    }

    /// <summary>Another host on the bridge (a server of a fleet, say): namespace
    /// <paramref name="prefix"/> + the LAN's id, its eth0 joined by a veth pair, with
    /// <paramref name="address"/>/24; removed with the LAN.</summary>
    public string AddHost(string prefix, string address)
    {
        string ns = prefix + _id;
        Add(ns);
        Join(ns, "h" + _namespaces.Count, address);
        return ns;
    }

    private void Add(string ns)
    {
        TwoHosts.Ip($"netns add {ns}");
        _namespaces.Add(ns);
    }

    public string LeaseFile => Path.Combine(Directory, "dnsmasq.leases");

    /// <summary>Starts dnsmasq on the bridge, serving .10-.250 of each subnet, and waits until it listens.</summary>
    public Process StartDnsmasq(string leaseTime = "2m")
    {
        if (!File.Exists("/usr/sbin/dnsmasq")) Assert.Fail("missing precondition: needs dnsmasq (`apt-get install dnsmasq-base`); .ci/run installs it");
        File.WriteAllText(LeaseFile, "");
        var args = new List<string>
        {
            "netns", "exec", Server, "/usr/sbin/dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
            $"--interface={Bridge}", "--bind-interfaces", "--dhcp-lease-max=5000", "--dhcp-authoritative", "--no-ping",
            $"--dhcp-leasefile={LeaseFile}", $"--pid-file={Path.Combine(Directory, "dnsmasq.pid")}", "--user=root", $"--log-facility={Path.Combine(Directory, "dnsmasq.log")}",
        };
        foreach (var subnet in Subnets) args.Add($"--dhcp-range={subnet}.10,{subnet}.250,255.255.255.0,{leaseTime}");
        var p = Track(StartProcess("ip", args, redirect: false));
        // Ready when its DHCP socket is open: the log says so right after binding.
        Assert.That(Eventually(() => File.Exists(Path.Combine(Directory, "dnsmasq.log")) && File.ReadAllText(Path.Combine(Directory, "dnsmasq.log")).Contains("DHCP, sockets bound"), TimeSpan.FromSeconds(10)),
            Is.True, "dnsmasq started");
        return p;
    }

    public string KeaLeaseFile => Path.Combine(Directory, "kea-leases4.csv");

    /// <summary>Starts Kea on the bridge serving 203.0.113.10-250 with very short lifetimes (which
    /// dnsmasq, with its two-minute minimum, cannot give), and waits until it serves.</summary>
    public Process StartKea(int valid = 6, int renew = 2, int rebind = 4)
    {
        string log = Path.Combine(Directory, "kea.log"), config = Path.Combine(Directory, "kea-dhcp4.json");
        // Listening on one address of the bridge: on all three, Kea's raw sockets see each packet three times.
        File.WriteAllText(config, $$"""
            { "Dhcp4": {
              "interfaces-config": { "interfaces": [ "{{Bridge}}/203.0.113.254" ], "dhcp-socket-type": "raw" },
              "lease-database": { "type": "memfile", "persist": true, "name": "{{KeaLeaseFile}}", "lfc-interval": 0 },
              "valid-lifetime": {{valid}}, "renew-timer": {{renew}}, "rebind-timer": {{rebind}}, "authoritative": true,
              "subnet4": [ { "id": 1, "subnet": "203.0.113.0/24", "interface": "{{Bridge}}",
                  "pools": [ { "pool": "203.0.113.10 - 203.0.113.250" } ] } ],
              "loggers": [ { "name": "kea-dhcp4", "severity": "INFO", "output_options": [ { "output": "{{log}}" } ] } ] } }
            """);
        return RunKea(Server, config, log);
    }

    /// <summary>Starts kea-dhcp4 with <paramref name="config"/> in namespace <paramref name="ns"/>
    /// and waits until its log (appended to, across restarts) says it started. Its lock and pid
    /// files go to this LAN's directory, named after the config, so two servers can share it.</summary>
    public Process RunKea(string ns, string config, string log)
    {
        if (!File.Exists("/usr/sbin/kea-dhcp4")) Assert.Fail("missing precondition: needs Kea (`apt-get install kea-dhcp4-server`); .ci/run installs it");
        int started = KeaStarts(log);
        var psi = new ProcessStartInfo("ip") { UseShellExecute = false };
        foreach (var a in new[] { "netns", "exec", ns, "/usr/sbin/kea-dhcp4", "-c", config }) psi.ArgumentList.Add(a);
        psi.Environment["KEA_LOCKFILE_DIR"] = Directory;
        psi.Environment["KEA_PIDFILE_DIR"] = Directory;
        var p = Track(Process.Start(psi)!);
        Assert.That(Eventually(() => KeaStarts(log) > started || p.HasExited, TimeSpan.FromSeconds(15)) && !p.HasExited, Is.True,
            () => $"Kea started with {config}: {(File.Exists(log) ? string.Join("\n", File.ReadLines(log).TakeLast(10)) : "(no log)")}");
        return p;
    }

    private static int KeaStarts(string log) => File.Exists(log) ? File.ReadLines(log).Count(l => l.Contains("DHCP4_STARTED")) : 0;

    /// <summary>Kea's lease rows (its memfile appends one per change): address, client id, expiry, lifetime.</summary>
    public List<(string Address, string ClientId, long Expire, long Lifetime)> KeaRows() =>
        File.Exists(KeaLeaseFile)
            ? File.ReadAllLines(KeaLeaseFile).Skip(1).Select(l => l.Split(',')).Where(f => f.Length > 5)
                .Select(f => (f[0], f[2], long.Parse(f[4]), long.Parse(f[3]))).ToList()
            : new();

    /// <summary>The last lines of the server's log, for failure messages.</summary>
    /// <summary>The server namespace's UDP counters (RcvbufErrors: datagrams its sockets dropped).</summary>
    public string ServerUdpCounters() => string.Join(" / ", TwoHosts.Exec(Server, "cat", "/proc/net/snmp").Split('\n').Where(l => l.StartsWith("Udp:")));

    public string ServerLogTail(int lines = 30)
    {
        var log = new[] { "dnsmasq.log", "kea.log" }.Select(f => Path.Combine(Directory, f)).FirstOrDefault(File.Exists);
        return log is null ? "(no log)" : string.Join("\n", File.ReadLines(log).TakeLast(lines));
    }

    public Process Track(Process p)
    {
        _processes.Add(p);
        return p;
    }

    /// <summary>Starts a server; its output is not redirected unless asked, so a full pipe can never stall it.</summary>
    public static Process StartProcess(string file, IEnumerable<string> args, bool redirect = true)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = redirect, RedirectStandardError = redirect, RedirectStandardInput = redirect, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }

    /// <summary>The server's lease file: (address, MAC, client id) per line.</summary>
    public List<(string Address, string Mac, string ClientId)> Leases() =>
        File.ReadAllLines(LeaseFile).Select(l => l.Split(' ')).Where(f => f.Length >= 5).Select(f => (f[2], f[1], f[4])).ToList();

    public string MacOf(string ns) => TwoHosts.Exec(ns, "cat", $"/sys/class/net/{ClientLink}/address").Trim();

    public List<string> AddressesOf(string ns) =>
        TwoHosts.Ip($"-n {ns} -o -4 addr show dev {ClientLink}").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Where(f => f.Length > 3).Select(f => f[3].Split('/')[0]).ToList();

    /// <summary>Settings of a DHCP pool on a client host's eth0. The tests' bridge has no DHCP
    /// snooping, and tests take hundreds of leases at once, so the pace is 1000 transactions a
    /// second unless a test sets its own (<paramref name="rate"/>).</summary>
    public Dictionary<string, string> Pool(string name = "dhcp", int prefetch = 0, double rate = 1000) => new()
    {
        ["SOCKSHIM_DHCPRATE"] = rate.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["SOCKSHIM_POOL"] = string.Join(",", Subnets.Select(s => s + ".0/24")),
        ["SOCKSHIM_EXCLUDE"] = "192.0.2.0-192.0.2.9,192.0.2.254",
        ["SOCKSHIM_POOLNAME"] = name,
        ["SOCKSHIM_SOURCE"] = "dhcp",
        ["SOCKSHIM_PROVISIONER"] = "netlink",
        ["SOCKSHIM_INTERFACE"] = ClientLink,
        ["SOCKSHIM_PREFETCH"] = prefetch.ToString(),
        ["SOCKSHIM_STATEDIR"] = StateDirectory,
        // Warnings (a failed send, a declined address) end up in a failing test's message.
        ["SOCKSHIM_LOG"] = "warning",
    };

    /// <summary>Polls <paramref name="condition"/> every 100 ms for at most <paramref name="limit"/>.</summary>
    public static bool Eventually(Func<bool> condition, TimeSpan limit)
    {
        var until = DateTime.UtcNow + limit;
        while (DateTime.UtcNow < until)
        {
            if (condition()) return true;
            Thread.Sleep(100);
        }
        return condition();
    }

    public void Dispose()
    {
        if (Environment.GetEnvironmentVariable("SOCKSHIM_TEST_KEEP_LAN") == "1") return;
        foreach (var p in _processes)
            try { if (!p.HasExited) p.Kill(true); p.WaitForExit(5000); } catch (InvalidOperationException) { }
        foreach (var ns in _namespaces)
        {
            foreach (var pid in TwoHosts.Quiet("ip", "netns", "pids", ns).Split('\n', StringSplitOptions.RemoveEmptyEntries))
                try { Process.GetProcessById(int.Parse(pid)).Kill(true); } catch (ArgumentException) { }
            TwoHosts.Quiet("ip", "netns", "delete", ns);
        }
        try { System.IO.Directory.Delete(Directory, true); } catch (IOException) { }
        try { System.IO.Directory.Delete(StateDirectory, true); } catch (IOException) { }
    }

}
