using System.CommandLine;
using System.Text.Json;
using SockShim.Stack.Addressing;
using SockShim.Stack.Configuration;
using SockShim.Stack.Policy;
using SockShim.Interceptor.Host;

namespace SockShim.Interceptor.Cli;

/// <summary><c>sockshim status</c>: the addresses held on this host (network namespace), and by whom.</summary>
internal static class StatusCommand
{
    public static Command Create(StackOptions stack, TextWriter output)
    {
        var json = new Option<bool>("--json") { Description = "print JSON instead of a table" };
        var command = new Command("status", "List the addresses SockShim holds on this host (this network namespace), with pid, process, pool, provisioner and age") { json };
        stack.AddTo(command);
        command.SetAction(parse =>
        {
            var now = DateTimeOffset.UtcNow;
            var problems = new List<string>();
            var rows = HostSweep.Holders(stack.StateDirectory(parse), problems)
                .Select(h => new HolderRow(h.Pool, h.Address.ToString(), h.Pid, ProcessName(h.Pid), h.Socket >= 0 ? $"fd {h.Socket}" : "-", h.Socket == SockShim.Stack.Claims.LeaseTable.ReadySocket,
                    h.Provisioner + (h.Interface is null ? "" : $" {h.Interface}"), (long)(now - h.Since).TotalSeconds, h.Alive,
                    h.LeaseExpires?.ToString("yyyy-MM-ddTHH:mm:ssZ"), h.LeaseExpires is { } e ? (long)(e - now).TotalSeconds : null, h.Sound))
                .OrderBy(r => r.Pool).ThenBy(r => r.Pid).ToList();
            if (parse.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(rows, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase }));
                foreach (var problem in problems) Console.Error.WriteLine($"problem: {problem}");
                return 0;
            }
            output.WriteLine($"{"POOL",-12} {"ADDRESS",-28} {"PID",8} {"PROCESS",-16} {"SOCKET",-8} {"PROVISIONER",-16} {"AGE",8} {"LEASE EXPIRES",-26} STATE");
            foreach (var r in rows)
                output.WriteLine($"{r.Pool,-12} {r.Address,-28} {r.Pid,8} {r.Process,-16} {r.Socket,-8} {r.Provisioner,-16} {r.AgeSeconds + "s",8} {(r.LeaseExpires is null ? "-" : $"{r.LeaseExpires} (in {r.LeaseExpiresInSeconds}s)"),-26} {State(r)}");
            output.WriteLine($"{rows.Count} held");
            foreach (var problem in problems) output.WriteLine($"problem: {problem}");
            return 0;
        });
        return command;
    }

    private sealed record HolderRow(string Pool, string Address, int Pid, string Process, string Socket, bool Ready, string Provisioner, long AgeSeconds, bool Alive,
        string? LeaseExpires, long? LeaseExpiresInSeconds, bool Sound);

    private static string State(HolderRow r) =>
        !r.Sound ? "damaged: its slot was written by something other than SockShim, so who holds it cannot be told; left alone"
        : !r.Alive ? "holder gone: `sockshim gc` frees it" : r.Ready ? "ready (prefetched)" : "live";

    private static string ProcessName(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/comm").Trim(); }
        catch (IOException) { return "-"; }
    }
}
