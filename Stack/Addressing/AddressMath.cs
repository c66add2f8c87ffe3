using System.Net.Sockets;

namespace SockShim.Stack.Addressing;

/// <summary>What differs between the two IP families.</summary>
internal static class AddressMath
{
    public static int Bits(AddressFamily family) => family == AddressFamily.InterNetwork ? 32 : 128;

    public static string FamilyName(AddressFamily family) => family == AddressFamily.InterNetwork ? "IPv4" : "IPv6";
}
