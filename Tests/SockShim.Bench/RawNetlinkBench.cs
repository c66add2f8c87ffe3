using System.Net;
using SockShim.Stack.Configuration;
using SockShim.Stack.Provisioning;
using SockShim.Stack.Provisioning.Netlink;

/// <summary>
/// The kernel's own cost of what the netlink provisioner does per socket, with nothing of
/// SockShim around it: the same pool's addresses (SOCKSHIM_POOL, SOCKSHIM_INTERFACE) in the order a
/// fresh pool hands them out, each added (RTM_NEWADDR with the provisioner's flags, acknowledged)
/// and deleted (RTM_DELADDR, acknowledged), timed like acquire-release (a warm-up of 1,000, then
/// the median of 5 rounds of N). bench/provisioners.sh prints the provisioner's ratio to it.
///   SockShim.Bench raw-netlink N [usable]
/// "usable" also waits, between add and delete, for the address's local route, as the
/// provisioner must before a socket may use an IPv6 address; without it the delete may come
/// before the kernel's address work has run at all, which then never joins the address's
/// solicited-node group nor puts in its route.
/// </summary>
internal static class RawNetlinkBench
{
    public static int Run(int n, bool usable)
    {
        var spec = SettingsLoader.Load();
        if (spec.Pools.FirstOrDefault() is not StaticPoolSpec { Provisioner: NetlinkProvisionerSpec netlink } pool)
        {
            Console.Error.WriteLine("raw-netlink: needs a static pool with SOCKSHIM_PROVISIONER=netlink and SOCKSHIM_INTERFACE");
            return 2;
        }
        if (HostFacts.InterfaceIndex(netlink.Interface) is not { } index)
        {
            Console.Error.WriteLine($"raw-netlink: no interface '{netlink.Interface}'");
            return 2;
        }
        using var socket = RouteNetlink.Open(out int openError) ?? throw new InvalidOperationException($"netlink socket: errno {openError}");
        var addresses = pool.Addresses;
        int next = 0;

        void Round(int count)
        {
            for (int i = 0; i < count; i++)
            {
                var address = addresses.AddressAt(next);
                next = (next + 1) % addresses.Count;
                int error = socket.ChangeAddress(add: true, index, address, NetlinkProvisioner.Mark);
                if (error != 0) throw new InvalidOperationException($"adding {address}: errno {error}");
                // As the provisioner waits: ask until the route is local, yielding between asks.
                var deadline = Environment.TickCount64 + 1000;
                while (usable && (socket.RouteTypeOf(address, out byte type) != 0 || type != SockShim.Stack.Interop.rtnetlink.RTN_LOCAL))
                {
                    if (Environment.TickCount64 > deadline) throw new InvalidOperationException($"no local route for {address} within 1 s");
                    Thread.Yield();
                }
                error = socket.ChangeAddress(add: false, index, address, NetlinkProvisioner.Mark);
                if (error != 0) throw new InvalidOperationException($"deleting {address}: errno {error}");
            }
        }

        double median = Median.OfFive(Round, n);
        string what = usable ? "raw add, route, del" : "raw add+del";
        Console.WriteLine($"{what,-22} {(usable ? "until usable  " : "kernel alone  ")}  {median / 1000:F2} us per address, median of 5 x {n} (median {median:F0} ns)");
        return 0;
    }
}
