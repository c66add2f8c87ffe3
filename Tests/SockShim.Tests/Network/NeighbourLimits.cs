namespace SockShim.Tests.Network;

/// <summary>
/// The kernel's ARP table limits are host-wide, not per namespace: a server talking to hundreds
/// of addresses on its link, plus the entries of namespaces that are still being torn down,
/// overflows the default 1,024 ("neighbor table overflow"), and connects fail with
/// EHOSTUNREACH. Every namespace test raises them first; they go back when the test run ends,
/// not between tests, since a namespace's entries outlive its deletion for a moment.
/// </summary>
internal static class NeighbourLimits
{
    private static readonly string[] Keys = ["gc_thresh1", "gc_thresh2", "gc_thresh3"];
    private static readonly int[] Needed = [4096, 8192, 16384];
    private static readonly object s_gate = new();
    private static bool s_raised;

    public static void EnsureRaised()
    {
        lock (s_gate)
        {
            if (s_raised) return;
            s_raised = true;
            var restore = new List<(string Key, string Value)>();
            for (int i = 0; i < Keys.Length; i++)
            {
                string key = $"net.ipv4.neigh.default.{Keys[i]}";
                string current = TwoHosts.Run("sysctl", ["-n", key]).Trim();
                if (int.Parse(current) >= Needed[i]) continue;
                restore.Add((key, current));
                TwoHosts.Run("sysctl", ["-q", "-w", $"{key}={Needed[i]}"]);
            }
            AppDomain.CurrentDomain.ProcessExit += (_, _) =>
            {
                foreach (var (key, value) in Enumerable.Reverse(restore)) TwoHosts.Quiet("sysctl", "-q", "-w", $"{key}={value}");
            };
        }
    }
}
