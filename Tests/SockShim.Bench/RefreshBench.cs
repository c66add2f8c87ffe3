using System.Diagnostics;
using System.Net;
using SockShim.Stack.Errors;
using SockShim.Stack.Provisioning;

/// <summary>
/// What a renewal costs on the host: COUNT leased addresses put on IFACE with a lifetime (the
/// exclusive add of a DHCP pool), then each lifetime set again as a renewal does (one
/// NLM_F_REPLACE request), then removed. The kernel walks the interface's addresses to find the
/// one to replace, so the cost grows with COUNT. Checks that the exclusive add still refuses an
/// address that is there after its refresh. Run in a namespace made for it (bench/provisioners.sh).
///   SockShim.Bench refresh IFACE FIRST-ADDRESS COUNT
/// </summary>
internal static class RefreshBench
{
    public static int Run(string iface, IPAddress first, int count)
    {
        using var provisioner = new NetlinkProvisioner(iface);
        var addresses = Enumerable.Range(0, count).Select(i => Offset(first, i)).ToList();
        var lifetime = TimeSpan.FromSeconds(600);
        // JIT and the socket's first use out of the timings.
        if (provisioner.Provision(addresses[0], "bench", lifetime) is { } warm) { Console.Error.WriteLine($"adding {addresses[0]}: {warm.Message}"); return 1; }
        provisioner.Refresh(addresses[0], lifetime);
        provisioner.Deprovision(addresses[0]);
        var sw = Stopwatch.StartNew();
        foreach (var address in addresses)
            if (provisioner.Provision(address, "bench", lifetime) is { } error) { Console.Error.WriteLine($"adding {address}: {error.Message}"); return 1; }
        double add = sw.Elapsed.TotalNanoseconds / count;
        var samples = new List<double>();
        for (int round = 0; round < 5; round++)
        {
            sw.Restart();
            foreach (var address in addresses) provisioner.Refresh(address, lifetime);
            samples.Add(sw.Elapsed.TotalNanoseconds / count);
        }
        samples.Sort();
        var again = provisioner.Provision(addresses[count / 2], "bench", lifetime);
        sw.Restart();
        foreach (var address in addresses) provisioner.Deprovision(address);
        double remove = sw.Elapsed.TotalNanoseconds / count;
        string family = first.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "IPv6" : "IPv4";
        Console.WriteLine($"lifetime refresh {family}, {count,5} addresses on {iface}: refresh {samples[2] / 1000:F1} us (median of 5 rounds), exclusive add {add / 1000:F1} us, remove {remove / 1000:F1} us per address; " +
            $"add after refresh: {(again?.Code == StackErrorCode.AddressInUse ? "refused (EEXIST), as it must be" : $"NOT refused ({again?.Message ?? "added"})")}");
        return again?.Code == StackErrorCode.AddressInUse ? 0 : 1;
    }

    private static IPAddress Offset(IPAddress first, int i)
    {
        var bytes = first.GetAddressBytes();
        for (int k = bytes.Length - 1, carry = i; k >= 0 && carry != 0; k--)
        {
            int sum = bytes[k] + (carry & 0xFF);
            bytes[k] = (byte)sum;
            carry = (carry >> 8) + (sum >> 8);
        }
        return new IPAddress(bytes);
    }
}
