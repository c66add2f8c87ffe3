using System.Net.Sockets;

namespace SockShim;

/// <summary>
/// The method's address families. Passing one of these as the family of a socket asks for a
/// socket with its own new IP address instead of the host's common one; the socket itself is
/// an ordinary <see cref="AddressFamily.InterNetwork"/> or <see cref="AddressFamily.InterNetworkV6"/>
/// socket. The values (0x5449, 0x544A: "TI", "TJ") are used by no real address family, in
/// .NET's <see cref="AddressFamily"/> or in Linux's AF_* numbers, so a socket asked for with
/// one of them can never be mistaken for an ordinary request.
/// </summary>
public static class TupleFamilies
{
    /// <summary>An IPv4 socket with its own address from the IPv4 pool.</summary>
    public const AddressFamily AF_INET_TUPLE = (AddressFamily)0x5449;

    /// <summary>An IPv6 socket with its own address from the IPv6 pool.</summary>
    public const AddressFamily AF_INET6_TUPLE = (AddressFamily)0x544A;

    /// <summary>True for <see cref="AF_INET_TUPLE"/> and <see cref="AF_INET6_TUPLE"/>.</summary>
    public static bool IsTupleFamily(AddressFamily family) => family is AF_INET_TUPLE or AF_INET6_TUPLE;

    /// <summary>The real family a tuple family stands for; other families are returned as they are.</summary>
    public static AddressFamily ToRealFamily(AddressFamily family) => family switch
    {
        AF_INET_TUPLE => AddressFamily.InterNetwork,
        AF_INET6_TUPLE => AddressFamily.InterNetworkV6,
        _ => family,
    };
}
