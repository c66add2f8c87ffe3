namespace SockShim.Stack.Provisioning;

/// <summary>The provisioners a pool can name in configuration.</summary>
public static class Provisioners
{
    public static IReadOnlyList<string> Names { get; } = ["loopback"];

    public static IAddressProvisioner? Create(string name) => name.Trim().ToLowerInvariant() switch
    {
        "loopback" => new LoopbackProvisioner(),
        _ => null,
    };
}
