namespace SockShim.Stack.Policy;

/// <summary>Under `sockshim run` (mode all): what an ordinary socket that binds the wildcard
/// before its first send gets (<c>new UdpClient(0)</c>, an RTP stack binding 0.0.0.0:port).</summary>
public enum WildcardBind
{
    /// <summary>The bind is left as the app asked: the socket keeps the host's common address.
    /// The default, because a listener binds exactly the same way and must stay reachable on
    /// every address of the host.</summary>
    Keep,
    /// <summary>The socket gets its own address at bind, with the port asked for. Only a
    /// socket of a family with a pool, and of a type the mode covers (TCP, UDP); the
    /// destination filter still applies at its first send or connect, which gives the address
    /// back when the destination is not one SockShim serves.</summary>
    Own,
}
