using SockShim.Stack.Configuration;

namespace SockShim.Stack.Provisioning;

/// <summary>The provisioners a pool can name in configuration.</summary>
public static class Provisioners
{
    public static IReadOnlyList<string> Names { get; } = ["loopback", "netlink", "anyip"];

    /// <summary>The provisioner a pool names, or null (with <paramref name="why"/>) when it cannot be made.</summary>
    public static IAddressProvisioner? Create(PoolSettings pool, out string why)
    {
        why = "";
        switch (pool.Provisioner.Trim().ToLowerInvariant())
        {
            case "loopback":
                return new LoopbackProvisioner();
            case "netlink":
                if (string.IsNullOrWhiteSpace(pool.Interface))
                {
                    why = $"the netlink provisioner needs the interface to put pool '{pool.Name}' addresses on";
                    return null;
                }
                return new NetlinkProvisioner(pool.Interface, pool.Announce ? new Announcer(pool.Interface) : null);
            case "anyip":
                return new AnyIpProvisioner(pool.AnyIpAddRoute);
            default:
                why = $"there is no such provisioner (known: {string.Join(", ", Names)})";
                return null;
        }
    }
}
