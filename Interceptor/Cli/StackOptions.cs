using System.CommandLine;
using SockShim.Stack.Configuration;

namespace SockShim.Interceptor.Cli;

/// <summary>The options every verb shares: they override SOCKSHIM_* variables and the JSON file.</summary>
internal sealed class StackOptions
{
    private readonly (Option<string> Option, string Key)[] _all =
    [
        (new("--config") { Description = "JSON configuration file (else SOCKSHIM_CONFIG)" }, SettingsLoader.ConfigKey),
        (new("--pool") { Description = "addresses of the pool: CIDRs, ranges or addresses, comma-separated (else SOCKSHIM_POOL; default 127.100.0.0/16)" }, SettingsLoader.PoolKey),
        (new("--exclude") { Description = "addresses to leave out of the pool, comma-separated (else SOCKSHIM_EXCLUDE)" }, SettingsLoader.ExcludeKey),
        (new("--pool-name") { Description = "the pool's name (else SOCKSHIM_POOLNAME)" }, SettingsLoader.PoolNameKey),
        (new("--strategy") { Description = "sequential, random or lrr (least recently released; the default)" }, SettingsLoader.StrategyKey),
        (new("--allocation") { Description = "eager (at socket creation; the default) or lazy (at bind/connect)" }, SettingsLoader.AllocationKey),
        (new("--provisioner") { Description = "how an address becomes usable: loopback (the default), netlink (on --interface), anyip (a prefix routed to the host)" }, SettingsLoader.ProvisionerKey),
        (new("--interface") { Description = "the interface the netlink provisioner puts addresses on (else SOCKSHIM_INTERFACE)" }, SettingsLoader.InterfaceKey),
        (new("--source") { Description = "static (the pool's ranges) or dhcp (a lease per socket from the DHCP server on --interface)" }, SettingsLoader.SourceKey),
        (new("--helper") { Description = "take addresses from `sockshim serve` on this Unix socket (the pool named by --pool-name); the app needs no capability" }, SettingsLoader.HelperKey),
        (new("--prefetch") { Description = "addresses kept ready so a socket need not wait: DHCP leases, or a static pool's addresses already on the interface (default 0)" }, SettingsLoader.PrefetchKey),
        (new("--conflict-probe") { Description = "static netlink pools shared by hosts: milliseconds an RFC 5227 ARP probe of each address waits for another station claiming it; a claimed address is skipped (default 0: no probe; IPv4)" }, SettingsLoader.ConflictProbeKey),
        (new("--dhcp-probe") { Description = "DHCP: milliseconds to wait for an answer to an ARP probe of each leased address before using it; an answer declines it (default 0: no probe)" }, SettingsLoader.DhcpProbeKey),
        (new("--dhcp-rate") { Description = "DHCP: acquisition packets (DISCOVERs, REQUESTs, retransmissions) a second on the interface, so a switch with DHCP snooping does not shut the port (default 8)" }, SettingsLoader.DhcpRateKey),
        (new("--dscp") { Description = "mark the pool's sockets with this DiffServ class: EF (voice), AF41, CS3 or 0-63" }, SettingsLoader.DscpKey),
        (new("--announce") { Description = "true: announce each added address with a gratuitous ARP / unsolicited neighbour advertisement" }, SettingsLoader.AnnounceKey),
        (new("--anyip-add-route") { Description = "true: the anyip provisioner adds the missing local route for the pool's prefix" }, SettingsLoader.AnyIpAddRouteKey),
        (new("--mode") { Description = "tuple (only AF_INET_TUPLE sockets) or all (every TCP/UDP client socket); sockshim run defaults to all" }, SettingsLoader.ModeKey),
        (new("--destinations") { Description = "in mode all, only sockets to these CIDR[:port[-port]] get an address, comma-separated (default: what the pool reaches; loopback for the loopback pool)" }, SettingsLoader.DestinationsKey),
        (new("--wildcard-bind") { Description = "keep (the default): a socket that binds 0.0.0.0/:: keeps the host's common address, as a listener must; own: such a TCP/UDP socket gets its own address at bind, with its port (mode all)" }, SettingsLoader.WildcardBindKey),
        (new("--state-dir") { Description = "where the host-wide lease tables live (default /run/sockshim for root; $XDG_RUNTIME_DIR/sockshim or /dev/shm/sockshim-UID for others)" }, SettingsLoader.StateDirKey),
    ];

    public void AddTo(Command command, bool forRun = false)
    {
        foreach (var (option, key) in _all)
            if (forRun || key is not (SettingsLoader.ModeKey or SettingsLoader.DestinationsKey or SettingsLoader.WildcardBindKey)) command.Options.Add(option);
    }

    /// <summary>Where the lease tables are, without checking any pool (status, gc).</summary>
    public string StateDirectory(ParseResult parse) =>
        Given(parse).GetValueOrDefault(SettingsLoader.StateDirKey)
        ?? (Environment.GetEnvironmentVariable("SOCKSHIM_STATEDIR") is { Length: > 0 } env ? env : StackSettings.DefaultStateDirectory);

    /// <summary>The options given on the command line, by setting key.</summary>
    public Dictionary<string, string?> Given(ParseResult parse)
    {
        var given = new Dictionary<string, string?>();
        foreach (var (option, key) in _all)
            if (parse.GetResult(option) is not null && parse.GetValue(option) is { } value) given[key] = value;
        return given;
    }

    /// <summary>Loads the settings, the given options over the environment over the file.</summary>
    public StackSpec Load(ParseResult parse)
    {
        return SettingsLoader.Load(Given(parse));
    }
}
