using System.CommandLine;
using System.Runtime.InteropServices;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using SockShim.Stack;
using SockShim.Stack.Configuration;
using SockShim.Stack.Errors;
using SockShim.Interceptor.Host;

namespace SockShim.Interceptor.Cli;

/// <summary><c>sockshim serve</c>: the privileged helper. It owns the configured pools and serves
/// unprivileged processes over a Unix socket, per the grants in the configuration file.</summary>
internal static class ServeCommand
{
    public const string DefaultSocket = "/run/sockshim/helper.sock";

    public static Command Create(StackOptions stack, TextWriter output, TextWriter error)
    {
        var socket = new Option<string>("--socket") { Description = $"the Unix socket to serve on (default {DefaultSocket})", DefaultValueFactory = _ => DefaultSocket };
        var defaults = HelperLimits.Default;
        var maxConnections = Positive(new Option<int>("--max-connections") { Description = $"connections served at once, from all users (default {defaults.MaxConnections}); more are refused", DefaultValueFactory = _ => defaults.MaxConnections });
        var maxPerUser = Positive(new Option<int>("--max-connections-per-user") { Description = $"connections one user may have at once (default {defaults.MaxConnectionsPerUser}); more are refused", DefaultValueFactory = _ => defaults.MaxConnectionsPerUser });
        var ungranted = Positive(new Option<int>("--max-ungranted-connections") { Description = $"of those, connections the accounts no grant names may have together (default {defaults.MaxUngrantedConnections}): they can only ask what a pool is, and however many uids they connect as, the rest stay for the accounts with grants", DefaultValueFactory = _ => defaults.MaxUngrantedConnections });
        var idle = Positive(new Option<int>("--idle-timeout") { Description = $"seconds a connection that holds no address is kept, counted from when it last held one, whatever it sends, and seconds it may stop in the middle of a request (default {(int)defaults.IdleTimeout.TotalSeconds})", DefaultValueFactory = _ => (int)defaults.IdleTimeout.TotalSeconds });
        var command = new Command("serve", "Run the privileged helper: do the netlink and DHCP work for the configured pools, and hand addresses to " +
            "unprivileged processes (`sockshim run --helper SOCKET --pool-name POOL`) per the \"grants\" of the configuration file") { socket, maxConnections, maxPerUser, ungranted, idle };
        stack.AddTo(command);
        command.SetAction(parse =>
        {
            var given = stack.Given(parse);
            // Checked first: a bad path is the user's mistake, said before any pool is set up.
            HelperSocketPath.Check(parse.GetValue(socket)!);
            // The grants come from the very bytes the pools did: read again by its path, the file
            // could be another one by then (a link re-pointed), unchecked.
            var settings = SettingsLoader.Load(given, null, out var read);
            if (read is null)
            {
                error.WriteLine("sockshim serve: give the pools and grants in a configuration file: --config /etc/sockshim/helper.json " +
                    "(example: {\"pools\": [{\"name\": \"nic\", \"ranges\": [\"198.51.100.0/24\"], \"provisioner\": \"netlink\", \"interface\": \"eth0\"}], " +
                    "\"grants\": [{\"user\": \"alice\", \"pools\": [\"nic\"], \"quota\": 100}]})");
                return 2;
            }
            var grants = ReadGrants(read);
            var limits = new HelperLimits(parse.GetValue(maxConnections), parse.GetValue(maxPerUser), TimeSpan.FromSeconds(parse.GetValue(idle)), parse.GetValue(ungranted));
            using var loggers = LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Information)
                .AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; })
                .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace));
            using var addressStack = AddressStack.Create(settings);
            using var server = new HelperServer(addressStack, grants, parse.GetValue(socket)!, loggers.CreateLogger("SockShim.Helper"), limits);
            server.Start();
            using var stop = new ManualResetEventSlim();
            using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Set(); });
            using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Set(); });
            output.WriteLine($"serving pools {string.Join(", ", addressStack.Pools.Select(p => p.Name))} on {server.SocketPath}");
            output.Flush();
            stop.Wait();
            return 0;
        });
        return command;
    }

    private static Option<int> Positive(Option<int> option)
    {
        option.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 1) r.AddError($"{option.Name} = '{r.GetValueOrDefault<int>()}': must be at least 1");
        });
        return option;
    }

    private static Grants ReadGrants(SockShim.Stack.Interop.TrustedFile read)
    {
        string file = read.Path;
        var problems = new List<string>();
        List<Grant?> list;
        var texts = new List<string>();
        try
        {
            using var doc = JsonDocument.Parse(new MemoryStream(read.Bytes), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            var section = doc.RootElement.EnumerateObject().FirstOrDefault(p => p.Name.Equals("grants", StringComparison.OrdinalIgnoreCase));
            if (section.Value.ValueKind == JsonValueKind.Array) texts.AddRange(section.Value.EnumerateArray().Select(e => e.GetRawText()));
            list = section.Value.ValueKind == JsonValueKind.Array
                ? section.Value.Deserialize<List<Grant?>>(new JsonSerializerOptions { PropertyNameCaseInsensitive = true }) ?? new()
                : new();
        }
        catch (JsonException ex)
        {
            throw new ConfigurationException(new SettingProblem($"{file} grants", "", $"not valid JSON: {ex.Message}", "\"grants\": [{\"user\": \"alice\", \"pools\": [\"nic\"], \"quota\": 100}]"));
        }
        if (list.Count == 0) problems.Add("there are no grants: no user could take an address");
        var grants = new Grants(list, name => IdOf("/etc/passwd", name), name => IdOf("/etc/group", name), problems);
        if (problems.Count > 0)
            throw new ConfigurationException(problems.Select(p => new SettingProblem($"file {file}, key 'grants'", GrantText(p, texts), p, "{\"user\": \"alice\", \"pools\": [\"nic\"], \"quota\": 100}")).ToList());
        return grants;
    }

    // The JSON text of the grant a problem ("grant N: ...") is about, so the message shows it.
    private static string GrantText(string problem, List<string> texts)
    {
        var m = System.Text.RegularExpressions.Regex.Match(problem, @"^grant (\d+):");
        return m.Success && int.Parse(m.Groups[1].Value) is var n && n <= texts.Count ? System.Text.RegularExpressions.Regex.Replace(texts[n - 1], @"\s+", " ") : "";
    }

    // passwd and group lines are name:x:id:...
    private static uint? IdOf(string database, string name) =>
        File.ReadLines(database).Select(l => l.Split(':')).Where(f => f.Length > 2 && f[0] == name).Select(f => uint.TryParse(f[2], out uint id) ? id : (uint?)null).FirstOrDefault();
}
