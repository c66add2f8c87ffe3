using System.CommandLine;
using System.Text.Json;

namespace SockShim.Interceptor.Cli;

/// <summary><c>sockshim status</c>: the addresses held on this host, and by whom.</summary>
internal static class StatusCommand
{
    public static Command Create(StackOptions stack, TextWriter output)
    {
        var json = new Option<bool>("--json") { Description = "print JSON instead of a table" };
        var command = new Command("status", "List the addresses of the configured pools held on this host, with their holders") { json };
        stack.AddTo(command);
        command.SetAction(parse =>
        {
            using var built = Stack.AddressStack.Create(stack.Load(parse));
            var rows = built.Pools.SelectMany(pool => pool.Holders())
                .Select(h => new HolderRow(h.Pool, h.Address.ToString(), h.Pid, ProcessName(h.Pid), h.Alive)).ToList();
            if (parse.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(rows, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase }));
                return 0;
            }
            output.WriteLine($"{"POOL",-12} {"ADDRESS",-40} {"PID",8} {"PROCESS",-16} STATE");
            foreach (var r in rows)
                output.WriteLine($"{r.Pool,-12} {r.Address,-40} {r.Pid,8} {r.Process,-16} {(r.Alive ? "live" : "dead (reclaimed on next use)")}");
            output.WriteLine($"{rows.Count} held in {built.Pools.Count} pool(s)");
            return 0;
        });
        return command;
    }

    private sealed record HolderRow(string Pool, string Address, int Pid, string Process, bool Alive);

    private static string ProcessName(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/comm").Trim(); }
        catch (IOException) { return "?"; }
    }
}
