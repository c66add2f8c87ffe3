using SockShim.Stack.Addressing;
using SockShim.Stack.Policy;

namespace SockShim.Stack.Configuration;

/// <summary>The one configuration model, whatever it was read from (defaults, a JSON file,
/// SOCKSHIM_* environment variables, command-line options).</summary>
public sealed class StackSettings
{
    public List<PoolSettings> Pools { get; init; } = new();
    public AllocationTime Allocation { get; init; } = AllocationTime.Eager;
    public string StateDirectory { get; init; } = DefaultStateDirectory;
    public InterceptMode Mode { get; init; } = InterceptMode.Tuple;

    /// <summary>Whether a wildcard bind gives an ordinary socket its own address (mode all).</summary>
    public WildcardBind WildcardBind { get; init; } = WildcardBind.Keep;

    /// <summary>Destinations that get a new address in mode all; empty: what the pools'
    /// provisioners can reach (loopback destinations only, for the loopback pool).</summary>
    public List<string> Destinations { get; init; } = new();

    /// <summary>Memory (tmpfs), so claims never touch a disk. Each account has its own (a table is
    /// writable only by the account that claims from it): root's is /run/sockshim (/run is
    /// root's, so no other account can make the name first; /dev/shm/sockshim without /run); another
    /// account's is $XDG_RUNTIME_DIR/sockshim, or /dev/shm/sockshim-UID. Accounts share a pool
    /// through `sockshim serve`, the one arbiter none of them can write to.</summary>
    public static string DefaultStateDirectory
    {
        get
        {
            uint uid = Tmds.Linux.LibC.geteuid();
            string shm = Directory.Exists("/dev/shm") ? "/dev/shm" : System.IO.Path.GetTempPath();
            if (uid == 0) return Directory.Exists("/run") ? "/run/sockshim" : System.IO.Path.Combine(shm, "sockshim");
            return Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR") is { Length: > 0 } xdg && System.IO.Path.IsPathFullyQualified(xdg)
                ? System.IO.Path.Combine(xdg, "sockshim")
                : System.IO.Path.Combine(shm, $"sockshim-{uid}");
        }
    }

    /// <summary>The embedded default: a /16 of loopback addresses (its network and broadcast
    /// addresses left out, as of every CIDR), least recently released first, loopback provisioner.</summary>
    public static PoolSettings DefaultPool => new()
    {
        Name = "loopback",
        Ranges = ["127.100.0.0/16"],
    };
}

public sealed class PoolSettings
{
    public string Name { get; init; } = "default";
    public List<string> Ranges { get; init; } = new();
    public List<string> Exclude { get; init; } = new();
    public AllocationStrategy Strategy { get; init; } = AllocationStrategy.LeastRecentlyReleased;
    public string Provisioner { get; init; } = "loopback";

    /// <summary>Declared family (<c>ipv4</c> or <c>ipv6</c>); null: taken from the ranges.</summary>
    public string? Family { get; init; }

    /// <summary>The interface the netlink provisioner puts addresses on.</summary>
    public string? Interface { get; init; }

    /// <summary>Announce each added address (gratuitous ARP / unsolicited neighbour advertisement).</summary>
    public bool Announce { get; init; }

    /// <summary>Let the AnyIP provisioner add the local route for the pool's prefix when it is missing.</summary>
    public bool AnyIpAddRoute { get; init; }

    /// <summary>Size of the pool's lease table; larger pools use their first addresses only.</summary>
    public int MaxAddresses { get; init; } = DefaultMaxAddresses;

    /// <summary><c>static</c>: the pool's ranges are the addresses; <c>dhcp</c>: one lease per socket
    /// from the DHCP server on <see cref="Interface"/>, within the ranges (the server's subnet).</summary>
    public string Source { get; init; } = "static";

    /// <summary>DHCP: leases kept bound and ready, so a new socket need not wait for the server.</summary>
    public int Prefetch { get; init; }

    /// <summary>DHCP: the lease time asked for (option 51); null lets the server choose.</summary>
    public int? LeaseSeconds { get; init; }

    /// <summary>DHCP: how long a socket waits for a lease before its creation fails.</summary>
    public double DhcpTimeout { get; init; } = 15;

    /// <summary>DHCP: milliseconds to wait for an answer to the ARP probe of each bound lease
    /// (RFC 5227; an answer means the address is in use: it is declined); 0 skips the probe.</summary>
    /// <summary>Static netlink pools shared by hosts: milliseconds an ARP probe of each address
    /// waits for another station claiming it before it is added (0: no probe).</summary>
    public int ConflictProbe { get; init; }
    public int DhcpProbe { get; init; }

    /// <summary>DHCP: acquisition packets (DISCOVERs, REQUESTs, retransmissions) a second on the interface,
    /// so a switch with DHCP snooping does not shut the port (see Dhcp/DiscoverPace).</summary>
    public double DhcpRate { get; init; } = Dhcp.DiscoverPace.DefaultRate;

    /// <summary>Source <c>helper</c>: the Unix socket of `sockshim serve`, which owns the pool
    /// named <see cref="Name"/> and hands its addresses to this unprivileged process.</summary>
    public string? Helper { get; init; }

    /// <summary>DiffServ class for sockets given this pool's addresses (EF, AF41, CS3, 0-63); null: none.</summary>
    public string? Dscp { get; init; }

    public const int DefaultMaxAddresses = 1 << 20;
    public const int MaxTableAddresses = 1 << 24;
}
