namespace SockShim.Interceptor.Weaving;

/// <summary>The runtime's System.Net.Sockets is not what the weaver was written for: a funnel
/// point is missing or has changed shape. Weaving stops rather than produce a partial hook.</summary>
public sealed class WeaveException(string message) : Exception(message);
