using System.Collections;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.Json;
using SockShim.Stack.Addressing;
using SockShim.Stack.Interop;

namespace SockShim.Stack.Configuration;

/// <summary>
/// Reads <see cref="StackSettings"/> from, lowest priority first: the built-in default, a JSON
/// file (SOCKSHIM_CONFIG or --config), SOCKSHIM_* environment variables, and options given on
/// the command line. Each value remembers where it came from, so an error names the file and
/// key, the variable or the option that holds it.
/// </summary>
public static class SettingsLoader
{
    public const string EnvironmentPrefix = "SOCKSHIM_";

    // A configuration file is a few kilobytes; a larger one is not read.
    private const long MaxFileBytes = 4 << 20;

    // Flat keys, the same in every source: SOCKSHIM_POOL, --pool, "pool" in JSON. They shape
    // the first pool (or the only one), which is what most users configure.
    public const string ConfigKey = "Config", PoolKey = "Pool", ExcludeKey = "Exclude", StrategyKey = "Strategy",
        ProvisionerKey = "Provisioner", AllocationKey = "Allocation", StateDirKey = "StateDir",
        MaxAddressesKey = "MaxAddresses", FamilyKey = "Family", PoolNameKey = "PoolName",
        ModeKey = "Mode", DestinationsKey = "Destinations", InterfaceKey = "Interface", AnnounceKey = "Announce",
        AnyIpAddRouteKey = "AnyIpAddRoute", SourceKey = "Source", PrefetchKey = "Prefetch", LeaseSecondsKey = "LeaseSeconds",
        DhcpTimeoutKey = "DhcpTimeout", DhcpProbeKey = "DhcpProbe", ConflictProbeKey = "ConflictProbe", DhcpRateKey = "DhcpRate", HelperKey = "Helper", DscpKey = "Dscp", WildcardBindKey = "WildcardBind";

    /// <summary>Loads and validates. <paramref name="options"/> maps flat keys to values given as
    /// command-line options; <paramref name="environment"/> defaults to the process's.</summary>
    public static StackSpec Load(IReadOnlyDictionary<string, string?>? options = null, IDictionary? environment = null) => Load(options, environment, out _);

    /// <summary>Loads and validates, and gives the configuration file as read (its canonical path
    /// and bytes; null without one): whatever else reads that file (the helper's grants) or names
    /// it to another process (the app's SOCKSHIM_CONFIG) uses these, never the path as given,
    /// which a link could lead elsewhere by then.</summary>
    internal static StackSpec Load(IReadOnlyDictionary<string, string?>? options, IDictionary? environment, out TrustedFile? read)
    {
        read = null;
        environment ??= Environment.GetEnvironmentVariables();
        var env = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (DictionaryEntry e in environment)
        {
            if (e.Key is string k && k.StartsWith(EnvironmentPrefix, StringComparison.OrdinalIgnoreCase))
                env[k[EnvironmentPrefix.Length..].Replace("__", ":")] = e.Value as string;
        }
        var cli = new Dictionary<string, string?>(options ?? new Dictionary<string, string?>(), StringComparer.OrdinalIgnoreCase);

        var builder = new ConfigurationBuilder();
        string? file = cli.GetValueOrDefault(ConfigKey) ?? env.GetValueOrDefault(ConfigKey);
        if (!string.IsNullOrWhiteSpace(file))
        {
            string origin = cli.ContainsKey(ConfigKey) ? "--config" : "environment variable SOCKSHIM_CONFIG";
            const string example = "/etc/sockshim.json, a JSON file such as {\"pools\":[{\"name\":\"voice\",\"ranges\":[\"127.50.0.0/24\"]}]}";
            if (Directory.Exists(file))
                throw new ConfigurationException(new SettingProblem(origin, file, "it is a directory, not a file", example));
            if (!File.Exists(file))
                throw new ConfigurationException(new SettingProblem(origin, file, "the file does not exist", example));
            // Its bytes are read once, through the path the check resolved: another account's file,
            // or one in a directory another account could change, would let that account choose
            // the pools, interfaces and routes SockShim sets up (as root too: sudo keeps the
            // variable, and a path given with --config is no safer). A file this account may not
            // read is a problem named in one line, not an exception from the configuration builder.
            Untrusted? untrusted;
            try { read = HostPaths.ReadTrusted(file, MaxFileBytes, out untrusted); }
            catch (IOException ex)
            {
                throw new ConfigurationException(new SettingProblem(origin, file, $"the file cannot be read: {ex.Message}", $"a file this account ({Environment.UserName}) can read: {example}"));
            }
            if (read is null) Refuse(untrusted!);
            builder.AddJsonStream(new MemoryStream(read!.Bytes));

            void Refuse(Untrusted problem) => throw new ConfigurationException(new SettingProblem(origin, file,
                $"{problem}: SockShim reads its configuration only from a file that, with every directory above it, is root's or this account's ({Environment.UserName}) and writable by no other account, which could otherwise choose the pools, interfaces and routes it sets up",
                "a new file such as /etc/sockshim.json, in a directory only root or this account can change, holding the settings you want: read this one before trusting any of it (another account may have changed it already; changing its mode now does not undo that)"));
        }
        builder.AddInMemoryCollection(env);
        builder.AddInMemoryCollection(cli);

        IConfigurationRoot root;
        try { root = builder.Build(); }
        catch (Exception ex) when (ex is FormatException or InvalidDataException or System.Text.Json.JsonException)
        {
            throw new ConfigurationException(new SettingProblem($"file {file}", "(its text)", $"it is not valid JSON: {ex.InnerException?.Message ?? ex.Message}", "{\"pools\":[{\"name\":\"voice\",\"ranges\":[\"127.50.0.0/24\"]}]}"));
        }
        return new SettingsReader(root, file).Read();
    }

    /// <summary>Where the value of <paramref name="key"/> came from, in the user's words.</summary>
    internal static string Describe(IConfigurationRoot root, string key, string? file)
    {
        var providers = root.Providers.ToList();
        for (int i = providers.Count - 1; i >= 0; i--)
        {
            // A list (Pools:0:Ranges) has no value of its own, only its items.
            if (!providers[i].TryGet(key, out _) && !providers[i].GetChildKeys([], key).Any()) continue;
            if (providers[i] is JsonStreamConfigurationProvider) return $"file {file}, key '{key}'";
            bool isCli = i == providers.Count - 1;
            return isCli
                ? "--" + ToKebab(key)
                : "environment variable " + EnvironmentPrefix + key.Replace(":", "__").ToUpperInvariant();
        }
        return $"setting '{key}'";
    }

    private static string ToKebab(string key) =>
        string.Concat(key.Select((c, i) => char.IsUpper(c) && i > 0 ? "-" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()));
}
