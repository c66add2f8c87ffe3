using System.Globalization;
using System.Net.NetworkInformation;

namespace SockShim.Stack.Provisioning;

/// <summary>Facts about the host a provisioner checks before it is used: interfaces, capabilities.</summary>
internal static class HostFacts
{
    /// <summary>The interface index, or null when there is no such interface in this namespace.</summary>
    public static uint? InterfaceIndex(string name)
    {
        if (name.Length == 0 || name.Contains('/') || name.Contains("..")) return null;
        try { return uint.Parse(File.ReadAllText($"/sys/class/net/{name}/ifindex").Trim(), CultureInfo.InvariantCulture); }
        catch (IOException) { return null; }
    }

    public static IReadOnlyList<string> InterfaceNames()
    {
        try { return Directory.GetDirectories("/sys/class/net").Select(Path.GetFileName).OfType<string>().Order().ToList(); }
        catch (IOException) { return []; }
    }

    /// <summary>The interface's hardware address (6 bytes), or null.</summary>
    public static byte[]? HardwareAddress(string name)
    {
        try { return PhysicalAddress.TryParse(File.ReadAllText($"/sys/class/net/{name}/address").Trim(), out var mac) && mac.GetAddressBytes() is { Length: 6 } bytes ? bytes : null; }
        catch (IOException) { return null; }
    }

    private const int CAP_NET_ADMIN = 12;

    /// <summary>Whether this process may change addresses and routes (CAP_NET_ADMIN in its
    /// effective set; root has it unless dropped).</summary>
    public static bool HasNetAdmin()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("CapEff:"))
                    return (ulong.Parse(line[7..].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture) & (1UL << CAP_NET_ADMIN)) != 0;
        }
        catch (IOException) { }
        return false;
    }

    public const string NetAdminHelp =
        "it needs CAP_NET_ADMIN: run it as root, or grant the capability to the program " +
        "(for example `setcap cap_net_admin+ep /path/to/apphost`, or AmbientCapabilities=CAP_NET_ADMIN in a systemd unit)";
}
