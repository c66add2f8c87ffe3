using System.Net;
using SockShim.Stack.Addressing;
using SockShim.Stack.Claims;
using SockShim.Stack.Configuration;
using SockShim.Stack.Dhcp;
using SockShim.Stack.Provisioning;
using SockShim.Stack.Provisioning.Netlink;
using SockShim.Stack.Sources;

namespace SockShim.Interceptor.Host;

/// <summary>Every pool table of this host (network namespace), read without a configuration.</summary>
public static class HostSweep
{
    /// <summary>A held slot; <paramref name="Sound"/> false: its words were changed by someone
    /// other than a claim (who holds it cannot be told, and it is left alone).</summary>
    public sealed record Holder(string Pool, string Provisioner, string? Interface, IPAddress Address, int Pid, bool Alive, DateTimeOffset Since, long Socket,
        DateTimeOffset? LeaseExpires = null, bool Sound = true);

    // A table as status and gc read it: never created, and one that cannot be used is a problem
    // named with its path, not a stack trace.
    private static LeaseTable? Read(string path, int slots, List<string>? problems)
    {
        try
        {
            var table = LeaseTable.OpenExisting(path, slots);
            if (table?.Damage() is not { } why) return table;
            table.Dispose();
            problems?.Add(why);
            return null;
        }
        catch (Exception ex) when (ex is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            problems?.Add($"{path}: {ex.Message}; left alone");
            return null;
        }
    }

    // A timestamp read from shared memory may be anything: out of range reads as the epoch.
    private static DateTimeOffset Timestamp(long unixMs) =>
        unixMs is >= 0 and <= 253402300799999 ? DateTimeOffset.FromUnixTimeMilliseconds(unixMs) : DateTimeOffset.UnixEpoch;

    public sealed record Report(IReadOnlyList<(string Pool, IPAddress Address, int Pid)> Reclaimed, IReadOnlyList<(string Interface, IPAddress Address)> Removed, IReadOnlyList<string> Problems);

    /// <summary>Who holds what, in every table of <paramref name="stateDirectory"/>; a table or
    /// description that cannot be read is named in <paramref name="problems"/>.</summary>
    public static List<Holder> Holders(string stateDirectory, List<string>? problems = null)
    {
        var holders = new List<Holder>();
        problems ??= new List<string>();
        foreach (var (path, settings, definition) in Open(stateDirectory, problems))
        {
            using var table = Read(path, definition.Count, problems);
            if (table is null) continue;
            foreach (var (slot, owner) in table.HeldSlots())
                holders.Add(new Holder(settings.Name, settings.Provisioner.ToString().ToLowerInvariant(), settings.Interface, definition.AddressAt(slot), ProcessIdentity.PidOf(owner),
                    table.HolderMayRun(slot, owner), Timestamp(table.AcquiredAtUnixMs(slot)), table.SocketOf(slot),
                    table.DhcpOf(slot) is { ExpiresUnixMs: not LeaseTable.ExpiryNotYetKnown } dhcp ? Timestamp(dhcp.ExpiresUnixMs) : null, table.IsSound(slot, owner)));
        }
        return holders;
    }

    /// <summary>
    /// Frees the table slots of holders that are gone, and removes from the interfaces every
    /// address carrying SockShim's mark, of a pool with a table here, that no holder has (gc holds
    /// each one's slot itself while it removes it). Addresses without the mark, outside those
    /// pools, or held, are not touched.
    /// </summary>
    public static Report Collect(string stateDirectory)
    {
        // Nothing to compare the interfaces against is no reason to remove what is on them.
        if (!Exists(stateDirectory))
            throw new UntrustedStateException($"state directory {stateDirectory} does not exist, so gc cannot tell which marked addresses are live; name the one in use with --state-dir or SOCKSHIM_STATEDIR");
        var problems = new List<string>();
        var unreadable = new List<string>();
        var reclaimed = new List<(string, IPAddress, int)>();
        var tables = new List<(LeaseTable Table, PoolDefinition Definition)>();
        try
        {
            Sweep(stateDirectory, problems, unreadable, reclaimed, tables);
            return Remove(tables, problems, unreadable, reclaimed);
        }
        finally
        {
            foreach (var (table, _) in tables) table.Dispose();
        }
    }

    private static void Sweep(string stateDirectory, List<string> problems, List<string> unreadable, List<(string, IPAddress, int)> reclaimed, List<(LeaseTable, PoolDefinition)> tables)
    {
        foreach (var (path, settings, definition) in Open(stateDirectory, unreadable))
        {
            var table = Read(path, definition.Count, unreadable);
            if (table is null) continue;
            tables.Add((table, definition));
            var owners = table.HeldSlots().ToDictionary(h => h.Slot, h => h.Owner);
            // A DHCP pool's dead holders still hold leases at the server: release them there too.
            // Opened only when there is something to release: it needs port 68.
            DhcpRelease? dhcp = null;
            bool opened = false;
            Action<int>? release = settings.Source != SourceKind.Dhcp ? null : slot =>
            {
                if (!opened) { opened = true; dhcp = OpenDhcp(settings, problems); }
                if (dhcp is not null) DhcpSource.ReleaseOrphan(table, definition, slot, dhcp.Client, dhcp.Mac, TimeProvider.System);
            };
            foreach (int slot in table.ReclaimDead(release))
                reclaimed.Add((settings.Name, definition.AddressAt(slot), ProcessIdentity.PidOf(owners.GetValueOrDefault(slot))));
            dhcp?.Dispose();
        }
    }

    // The address's slot in every table whose pool has it, claimed by gc itself for the removal
    // (null when a holder has one): a claim is a compare-and-swap from free, so no process can
    // claim the slot, and put the address back or count on it, between gc's check and its
    // delete. A bare re-read of the slot would leave that window open.
    private static List<(LeaseTable Table, int Slot)>? ClaimForRemoval(List<(LeaseTable Table, PoolDefinition Definition)> tables, IPAddress address, long gc)
    {
        var claimed = new List<(LeaseTable, int)>();
        foreach (var (table, definition) in tables)
        {
            if (definition.IndexOf(address) is not (var slot and >= 0)) continue;
            // A table damaged meanwhile cannot tell who holds the address: it counts as held.
            if (table.Damage() is not null || !table.TryClaimSlot(slot, gc))
            {
                GiveBack(claimed, gc);
                return null;
            }
            claimed.Add((table, slot));
        }
        return claimed;
    }

    private static void GiveBack(List<(LeaseTable Table, int Slot)> claimed, long gc)
    {
        foreach (var (table, slot) in claimed) table.Release(slot, gc);
    }

    private static bool InSomePool(List<(LeaseTable Table, PoolDefinition Definition)> tables, IPAddress address) =>
        tables.Any(t => t.Definition.IndexOf(address) >= 0);

    private static Report Remove(List<(LeaseTable, PoolDefinition)> tables, List<string> problems, List<string> unreadable, List<(string, IPAddress, int)> reclaimed)
    {
        var removed = new List<(string, IPAddress)>();
        if (unreadable.Count > 0)
        {
            // A table or description it could not read may be a live holder's: no address is removed.
            problems.AddRange(unreadable);
            problems.Add("no address was removed from the interfaces: a pool above could not be read, and its live addresses would look unheld");
            return new Report(reclaimed, removed, problems);
        }
        using var netlink = RouteNetlink.Open(out int openError);
        if (netlink is null)
        {
            problems.Add($"cannot read the interfaces' addresses (netlink errno {openError})");
            return new Report(reclaimed, removed, problems);
        }
        var addresses = new List<(uint Index, IPAddress Address, byte PrefixLength, byte Protocol)>();
        int listError = netlink.ListAddresses(addresses);
        if (listError != 0) problems.Add($"listing addresses failed: errno {listError}");
        var names = HostFacts.InterfaceNames().ToDictionary(n => HostFacts.InterfaceIndex(n) ?? 0, n => n);
        // Only addresses of a pool it has a table for: a marked address outside them is another
        // account's SockShim's (or another state directory's), and not gc's to judge.
        foreach (var a in addresses.Where(a => a.Protocol == NetlinkProvisioner.Mark && InSomePool(tables, a.Address)))
        {
            if (ClaimForRemoval(tables, a.Address, ProcessIdentity.Current) is not { } claimed) continue;
            int error = netlink.ChangeAddress(add: false, a.Index, a.Address, NetlinkProvisioner.Mark);
            GiveBack(claimed, ProcessIdentity.Current);
            string name = names.GetValueOrDefault(a.Index, $"#{a.Index}");
            if (error == 0) removed.Add((name, a.Address));
            // Its holder gave it back (and took it off) after the listing: nothing left to do.
            else if (error == Tmds.Linux.LibC.EADDRNOTAVAIL) continue;
            else problems.Add(error == Tmds.Linux.LibC.EPERM ? $"removing {a.Address} from {name}: {HostFacts.NetAdminHelp}" : $"removing {a.Address} from {name} failed: errno {error}");
        }
        return new Report(reclaimed, removed, problems);
    }

    private sealed record DhcpRelease(DhcpClient Client, byte[] Mac) : IDisposable
    {
        public void Dispose()
        {
            Client.Flush(DhcpSource.FlushTimeout(Client.UnsentReleases));
            Client.Dispose();
        }
    }

    private static DhcpRelease? OpenDhcp(PoolDescription settings, List<string> problems)
    {
        string iface = settings.Interface ?? "";
        var mac = HostFacts.HardwareAddress(iface);
        var client = mac is null ? null : DhcpClient.Open(iface, settings.Provisioner == ProvisionerKind.AnyIp, DhcpSource.ReleaseGap, TimeProvider.System, settings.Name, out string why);
        if (client is null)
        {
            problems.Add($"pool '{settings.Name}': cannot release its dead holders' DHCP leases on {iface}: {(mac is null ? "no such Ethernet interface" : "the DHCP socket could not be opened")}; they expire at the server instead");
            return null;
        }
        return new DhcpRelease(client, mac!);
    }

    private static IEnumerable<(string Path, PoolDescription Settings, PoolDefinition Definition)> Open(string stateDirectory, List<string> problems)
    {
        // The directories above it are judged even when it does not exist yet. Nothing there: no
        // tables yet. Anything else there (a file, a link) is refused by the check, with a
        // message naming it, rather than read as "no tables".
        stateDirectory = HostFiles.CheckBeforeUse(stateDirectory);
        if (!Exists(stateDirectory)) yield break;
        foreach (var path in Directory.GetFiles(stateDirectory, "*" + StateDirectory.TableSuffix))
        {
            if (PoolDescription.FromJson(Description(path)) is not { } description || description.Definition() is not { } definition)
            {
                problems.Add($"{path}: its pool description cannot be read; left alone");
                continue;
            }
            yield return (path, description, definition);
        }
    }

    // The description written beside a table (see StateDirectory.WriteDescription), or null.
    private static string? Description(string tablePath)
    {
        try
        {
            using var file = HostFiles.OpenExisting(tablePath + ".pool.json", size: null);
            return file is null ? null : new StreamReader(file).ReadToEnd();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>Whether anything, even a dangling link, is at <paramref name="path"/>.</summary>
    private static bool Exists(string path) => Path.Exists(path) || new FileInfo(path).LinkTarget is not null;
}
