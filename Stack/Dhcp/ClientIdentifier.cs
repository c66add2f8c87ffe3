using System.Buffers.Binary;

namespace SockShim.Stack.Dhcp;

/// <summary>
/// Option 61 for one socket's lease, in the RFC 4361 form: type 255, a 32-bit IAID, then a
/// DUID-LL (type 3, hardware type 1, the interface's MAC). Servers key leases by client
/// identifier, so one MAC holds as many leases as there are IAIDs; the MAC in the DUID keeps
/// two hosts apart, and the IAID comes from the pool's host-wide table so two processes of one
/// host never share one.
/// </summary>
internal static class ClientIdentifier
{
    public const int Length = 1 + 4 + 10;

    public static byte[] For(uint iaid, ReadOnlySpan<byte> mac)
    {
        if (mac.Length != 6) throw new ArgumentException("a DUID-LL needs a 6-byte Ethernet address", nameof(mac));
        var id = new byte[Length];
        id[0] = 255;
        BinaryPrimitives.WriteUInt32BigEndian(id.AsSpan(1), iaid);
        BinaryPrimitives.WriteUInt16BigEndian(id.AsSpan(5), 3); // DUID-LL
        BinaryPrimitives.WriteUInt16BigEndian(id.AsSpan(7), 1); // Ethernet
        mac.CopyTo(id.AsSpan(9));
        return id;
    }

    /// <summary>As dnsmasq and Kea print it in their lease files: hex bytes joined by colons.</summary>
    public static string Format(ReadOnlySpan<byte> id) => Convert.ToHexString(id).ToLowerInvariant().Chunk(2).Select(c => new string(c)).Aggregate((a, b) => a + ":" + b);
}
