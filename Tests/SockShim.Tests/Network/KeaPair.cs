using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace SockShim.Tests.Network;

/// <summary>One lease as a Kea server holds it (lease4-get-all, or its memfile's last row).</summary>
internal readonly record struct KeaLease(string Address, string Mac, string ClientId, long Cltt, long Valid, int State)
{
    /// <summary>Bound now: state default (not declined, not reclaimed) and not past its lifetime.</summary>
    public bool LiveAt(DateTimeOffset now) => State == 0 && Cltt + Valid > now.ToUnixTimeSeconds();
}

/// <summary>
/// Two kea-dhcp4 servers with the High Availability hook on a <see cref="DhcpLan"/>'s bridge, each
/// in its own namespace (server1 the primary at 192.0.2.8, server2 the standby or secondary at
/// 192.0.2.9; test client hosts are .1 up). They serve one shared network of the three
/// documentation /24s (.10-.250 of each: 723 addresses), keep their leases in a memfile that
/// survives a restart (persist), and talk to each other over HA+MT's own HTTP listener on port
/// 8001, so no kea-ctrl-agent is needed (Kea 2.2). Each has a control socket (Unix) for
/// lease4-get-all and ha-heartbeat. A dead partner is noticed fast: heartbeats every second, down
/// after 2 s without an answer, and max-unacked-clients 0, so the survivor goes partner-down as
/// soon as it cannot reach the other, without waiting for clients to be seen unanswered.
/// HA without a control agent needs Kea's multi-threading on, but with one DHCP thread: Kea 2.2
/// processes one packet per client at a time, a client being its client id and also its MAC,
/// and every lease of a SockShim host shares the host's MAC; with two threads a burst (the
/// releases at close) had 4 of 680 DHCPRELEASEs dropped (received, never "released properly").
/// </summary>
internal sealed class KeaPair
{
    public static readonly string[] Addresses = ["192.0.2.8", "192.0.2.9"];
    private readonly DhcpLan _lan;
    private readonly Process?[] _processes = new Process?[2];

    public string[] Namespaces { get; }
    public string Mode { get; }

    /// <summary>Two servers' namespaces on the LAN and their configs; <paramref name="mode"/> is
    /// "hot-standby" (server2 standby) or "load-balancing" (server2 secondary), the lifetimes in seconds.</summary>
    public KeaPair(DhcpLan lan, string mode = "hot-standby", int valid = 20, int renew = 10, int rebind = 15)
    {
        _lan = lan;
        Mode = mode;
        Namespaces = [lan.AddHost("sdk1", Addresses[0]), lan.AddHost("sdk2", Addresses[1])];
        for (int i = 0; i < 2; i++) File.WriteAllText(Config(i), ConfigText(i, valid, renew, rebind));
    }

    public string Config(int i) => Path.Combine(_lan.Directory, $"kea-ha{i + 1}.json");
    public string Log(int i) => Path.Combine(_lan.Directory, $"kea-ha{i + 1}.log");
    public string LeaseFile(int i) => Path.Combine(_lan.Directory, $"kea-ha{i + 1}-leases4.csv");
    public string ControlSocket(int i) => Path.Combine(_lan.Directory, $"kea-ha{i + 1}.sock");

    private string ConfigText(int i, int valid, int renew, int rebind)
    {
        string hooks = "/usr/lib/x86_64-linux-gnu/kea/hooks";
        string secondRole = Mode == "hot-standby" ? "standby" : "secondary";
        var subnets = string.Join(",\n", DhcpLan.Subnets.Select((s, n) =>
            $$"""{ "id": {{n + 1}}, "subnet": "{{s}}.0/24", "pools": [ { "pool": "{{s}}.10 - {{s}}.250" } ] }"""));
        // Load-balancing splits the pools by Kea's HA_server1/HA_server2 classes (a hash of the
        // client): each server leases from its own half, so the two never offer one address.
        if (Mode == "load-balancing")
            subnets = string.Join(",\n", DhcpLan.Subnets.Select((s, n) =>
                $$"""{ "id": {{n + 1}}, "subnet": "{{s}}.0/24", "pools": [ { "pool": "{{s}}.10 - {{s}}.129", "client-class": "HA_server1" }, { "pool": "{{s}}.130 - {{s}}.250", "client-class": "HA_server2" } ] }"""));
        return $$"""
            { "Dhcp4": {
              "interfaces-config": { "interfaces": [ "{{DhcpLan.ClientLink}}" ], "dhcp-socket-type": "raw" },
              "control-socket": { "socket-type": "unix", "socket-name": "{{ControlSocket(i)}}" },
              "lease-database": { "type": "memfile", "persist": true, "name": "{{LeaseFile(i)}}", "lfc-interval": 0 },
              "multi-threading": { "enable-multi-threading": true, "thread-pool-size": 1, "packet-queue-size": 1024 },
              "valid-lifetime": {{valid}}, "renew-timer": {{renew}}, "rebind-timer": {{rebind}}, "authoritative": true,
              "hooks-libraries": [
                { "library": "{{hooks}}/libdhcp_lease_cmds.so" },
                { "library": "{{hooks}}/libdhcp_ha.so", "parameters": { "high-availability": [ {
                  "this-server-name": "server{{i + 1}}", "mode": "{{Mode}}",
                  "heartbeat-delay": 1000, "max-response-delay": 2000, "max-ack-delay": 1000, "max-unacked-clients": 0,
                  "multi-threading": { "enable-multi-threading": true, "http-dedicated-listener": true, "http-listener-threads": 1, "http-client-threads": 1 },
                  "peers": [
                    { "name": "server1", "url": "http://{{Addresses[0]}}:8001/", "role": "primary", "auto-failover": true },
                    { "name": "server2", "url": "http://{{Addresses[1]}}:8001/", "role": "{{secondRole}}", "auto-failover": true } ] } ] } } ],
              "shared-networks": [ { "name": "lan", "interface": "{{DhcpLan.ClientLink}}", "subnet4": [
                {{subnets}} ] } ],
              "loggers": [
                { "name": "kea-dhcp4", "severity": "INFO", "output_options": [ { "output": "{{Log(i)}}" } ] },
                { "name": "kea-dhcp4.commands", "severity": "WARN", "output_options": [ { "output": "{{Log(i)}}" } ] } ] } }
            """;
    }

    /// <summary>Starts server <paramref name="i"/> (0 the primary) from its config and memfile.</summary>
    public Process Start(int i)
    {
        if (!File.Exists("/usr/lib/x86_64-linux-gnu/kea/hooks/libdhcp_ha.so"))
            Assert.Fail("missing precondition: needs Kea's HA hook, /usr/lib/x86_64-linux-gnu/kea/hooks/libdhcp_ha.so (`apt-get install kea-dhcp4-server`)");
        return _processes[i] = _lan.RunKea(Namespaces[i], Config(i), Log(i));
    }

    /// <summary>Starts both and waits until each says it is in the mode's normal state
    /// (hot-standby or load-balancing).</summary>
    public void StartBoth()
    {
        Start(0);
        Start(1);
        AwaitState(0, Mode);
        AwaitState(1, Mode);
    }

    /// <summary>SIGKILL: no goodbye to the partner, as when its host dies.</summary>
    public void Kill(int i)
    {
        var p = _processes[i] ?? throw new InvalidOperationException($"server{i + 1} was not started");
        p.Kill(true);
        Assert.That(p.WaitForExit(10_000), Is.True, $"server{i + 1} exits on SIGKILL");
    }

    /// <summary>The server's HA state, as it answers ha-heartbeat.</summary>
    public string State(int i) =>
        JsonDocument.Parse(Command(i, """{ "command": "ha-heartbeat" }""")).RootElement.GetProperty("arguments").GetProperty("state").GetString()!;

    public void AwaitState(int i, string state, int seconds = 20)
    {
        string last = "";
        Assert.That(DhcpLan.Eventually(() => (last = TryState(i)) == state, TimeSpan.FromSeconds(seconds)), Is.True,
            () => $"server{i + 1} reaches state {state} within {seconds} s (last seen: {last}); its log:\n{LogTail(i)}");
    }

    private string TryState(int i)
    {
        try { return State(i); }
        catch (SocketException e) { return $"(control socket: {e.SocketErrorCode})"; }
    }

    /// <summary>Every lease the running server holds (lease4-get-all over its control socket).</summary>
    public List<KeaLease> Leases(int i)
    {
        using var doc = JsonDocument.Parse(Command(i, """{ "command": "lease4-get-all" }"""));
        var root = doc.RootElement;
        int result = root.GetProperty("result").GetInt32();
        // 0: leases found, 3: none (an empty list).
        Assert.That(result, Is.AnyOf(0, 3), () => $"server{i + 1} lease4-get-all: {root}");
        return root.GetProperty("arguments").GetProperty("leases").EnumerateArray().Select(l => new KeaLease(
            l.GetProperty("ip-address").GetString()!,
            l.GetProperty("hw-address").GetString()!,
            l.TryGetProperty("client-id", out var id) ? id.GetString()! : "",
            l.GetProperty("cltt").GetInt64(),
            l.GetProperty("valid-lft").GetInt64(),
            l.GetProperty("state").GetInt32())).ToList();
    }

    /// <summary>The leases a server's memfile holds (its last row per address), read from the
    /// file: what a stopped server starts again with.</summary>
    public List<KeaLease> FileLeases(int i)
    {
        // address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,...
        var last = new Dictionary<string, KeaLease>();
        foreach (var f in File.ReadLines(LeaseFile(i)).Skip(1).Select(l => l.Split(',')).Where(f => f.Length > 9))
        {
            long valid = long.Parse(f[3]), expire = long.Parse(f[4]);
            last[f[0]] = new KeaLease(f[0], f[1], f[2], expire - valid, valid, int.Parse(f[9]));
        }
        return last.Values.ToList();
    }

    /// <summary>One command over the server's control socket; Kea answers and closes.</summary>
    public string Command(int i, string json)
    {
        using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        s.ReceiveTimeout = s.SendTimeout = 10_000;
        s.Connect(new UnixDomainSocketEndPoint(ControlSocket(i)));
        s.Send(Encoding.UTF8.GetBytes(json));
        using var answer = new MemoryStream();
        var buffer = new byte[65536];
        int got;
        while ((got = s.Receive(buffer)) > 0) answer.Write(buffer, 0, got);
        return Encoding.UTF8.GetString(answer.ToArray());
    }

    public string LogTail(int i, int lines = 30) =>
        File.Exists(Log(i)) ? string.Join("\n", File.ReadLines(Log(i)).TakeLast(lines)) : "(no log)";

    /// <summary>The addresses server <paramref name="i"/>'s log says were released properly.</summary>
    public HashSet<string> Released(int i) => File.Exists(Log(i))
        ? File.ReadLines(Log(i)).Where(l => l.Contains("DHCP4_RELEASE ")).Select(l => System.Text.RegularExpressions.Regex.Match(l, @"address (\S+) was released properly")).Where(m => m.Success).Select(m => m.Groups[1].Value).ToHashSet()
        : new();
}
