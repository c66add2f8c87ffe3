using System.Diagnostics;

namespace SockShim.Tests.Network;

/// <summary>A program of the test output run as a user the test made: its uid and gid, no
/// supplementary group, no capability (setpriv), in network namespace <c>ns</c> when one is named.</summary>
internal static class Unprivileged
{
    public static Process Start(string? ns, uint uid, uint gid, string program, IEnumerable<string> args, IDictionary<string, string> env)
    {
        var psi = new ProcessStartInfo(ns is null ? "setpriv" : "ip") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        if (ns is not null) foreach (var a in new[] { "netns", "exec", ns, "setpriv" }) psi.ArgumentList.Add(a);
        foreach (var a in new[] { $"--reuid={uid}", $"--regid={gid}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "dotnet", Programs.PathOf(program) })
            psi.ArgumentList.Add(a);
        foreach (var a in args) psi.ArgumentList.Add(a);
        // A child must not pick up this machine's own SockShim settings.
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("SOCKSHIM_")).ToList()) psi.Environment.Remove(key);
        foreach (var (k, v) in env) psi.Environment[k] = v;
        return Process.Start(psi)!;
    }
}
