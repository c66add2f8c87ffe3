using System.Buffers.Binary;
using System.Net;

namespace SockShim.Stack.Wire;

/// <summary>DHCP message type, option 53 (RFC 2132 §9.6).</summary>
internal enum DhcpMessageType : byte
{
    Discover = 1, Offer = 2, Request = 3, Decline = 4, Ack = 5, Nak = 6, Release = 7, Inform = 8,
}

/// <summary>
/// A BOOTP/DHCP message (RFC 2131 §2) with the options (RFC 2132) this client sends and reads.
/// Parsing checks every length against the buffer and rejects what is not an Ethernet DHCP
/// message; it never throws, because whatever arrives on port 68 is untrusted.
/// </summary>
internal sealed class DhcpMessage
{
    public const int ServerPort = 67, ClientPort = 68;
    public const ushort BroadcastFlag = 0x8000;
    private const int FixedLength = 236;
    private const uint MagicCookie = 0x63825363;
    /// <summary>The shortest message: the fixed part and the magic cookie.</summary>
    public const int MinLength = FixedLength + 4;
    /// <summary>What any message this client emits fits in (RFC 2131: clients accept 576-byte messages).</summary>
    public const int MaxEmitLength = 576;

    // Option codes (RFC 2132).
    private const byte OptPad = 0, OptSubnetMask = 1, OptRouter = 3, OptRequestedAddress = 50, OptLeaseTime = 51, OptOverload = 52,
        OptMessageType = 53, OptServerId = 54, OptParameterRequest = 55, OptMessage = 56, OptMaxMessageSize = 57,
        OptRenewalTime = 58, OptRebindingTime = 59, OptClientId = 61, OptEnd = 255;

    public byte Op { get; set; } = 1;
    public uint TransactionId { get; set; }
    public ushort Seconds { get; set; }
    public ushort Flags { get; set; }
    public IPAddress ClientAddress { get; set; } = IPAddress.Any;
    public IPAddress YourAddress { get; set; } = IPAddress.Any;
    public IPAddress NextServerAddress { get; set; } = IPAddress.Any;
    public IPAddress RelayAddress { get; set; } = IPAddress.Any;
    /// <summary>chaddr: the Ethernet address (6 bytes).</summary>
    public byte[] HardwareAddress { get; set; } = new byte[6];

    public DhcpMessageType? MessageType { get; set; }
    public IPAddress? ServerId { get; set; }
    public IPAddress? RequestedAddress { get; set; }
    public IPAddress? SubnetMask { get; set; }
    /// <summary>Option 3: the routers of the client's subnet, in order of preference.</summary>
    public IPAddress[]? Routers { get; set; }
    public uint? LeaseSeconds { get; set; }
    public uint? RenewalSeconds { get; set; }
    public uint? RebindingSeconds { get; set; }
    public byte[]? ClientId { get; set; }
    public byte[]? ParameterRequests { get; set; }
    public ushort? MaxMessageSize { get; set; }
    /// <summary>Option 56: a server's reason, for example in a NAK.</summary>
    public string? Text { get; set; }

    public bool IsReply => Op == 2;

    /// <summary>Parses one UDP payload. False with a reason for anything malformed or foreign.</summary>
    public static bool TryParse(ReadOnlySpan<byte> b, out DhcpMessage message, out string error)
    {
        message = new DhcpMessage();
        if (b.Length < MinLength) { error = $"{b.Length} bytes, shorter than the {MinLength} of a DHCP message"; return false; }
        if (b[0] is not (1 or 2)) { error = $"op {b[0]} is neither BOOTREQUEST nor BOOTREPLY"; return false; }
        if (b[1] != 1 || b[2] != 6) { error = $"hardware type {b[1]} length {b[2]}, not Ethernet"; return false; }
        if (BinaryPrimitives.ReadUInt32BigEndian(b[FixedLength..]) != MagicCookie) { error = "no DHCP magic cookie"; return false; }

        message.Op = b[0];
        message.TransactionId = BinaryPrimitives.ReadUInt32BigEndian(b[4..]);
        message.Seconds = BinaryPrimitives.ReadUInt16BigEndian(b[8..]);
        message.Flags = BinaryPrimitives.ReadUInt16BigEndian(b[10..]);
        message.ClientAddress = new IPAddress(b.Slice(12, 4));
        message.YourAddress = new IPAddress(b.Slice(16, 4));
        message.NextServerAddress = new IPAddress(b.Slice(20, 4));
        message.RelayAddress = new IPAddress(b.Slice(24, 4));
        message.HardwareAddress = b.Slice(28, 6).ToArray();
        return message.TryParseOptions(b[MinLength..], out error);
    }

    private bool TryParseOptions(ReadOnlySpan<byte> o, out string error)
    {
        int i = 0;
        while (i < o.Length)
        {
            byte code = o[i++];
            if (code == OptPad) continue;
            if (code == OptEnd) break;
            if (i >= o.Length) { error = $"option {code} has no length byte"; return false; }
            int len = o[i++];
            if (i + len > o.Length) { error = $"option {code} claims {len} bytes, {o.Length - i} remain"; return false; }
            var v = o.Slice(i, len);
            i += len;
            switch (code)
            {
                case OptMessageType:
                    if (len != 1 || v[0] is < 1 or > 8) { error = $"option 53 (message type) malformed"; return false; }
                    MessageType = (DhcpMessageType)v[0];
                    break;
                case OptServerId: if (!Address(v, code, out var s, out error)) return false; ServerId = s; break;
                case OptRequestedAddress: if (!Address(v, code, out var r, out error)) return false; RequestedAddress = r; break;
                case OptSubnetMask: if (!Address(v, code, out var m, out error)) return false; SubnetMask = m; break;
                case OptRouter:
                    if (len == 0 || len % 4 != 0) { error = $"option 3 (router) is {len} bytes, not a list of IPv4 addresses"; return false; }
                    var routers = new IPAddress[len / 4];
                    for (int k = 0; k < routers.Length; k++) routers[k] = new IPAddress(v.Slice(4 * k, 4));
                    Routers = routers;
                    break;
                case OptLeaseTime: if (!Seconds32(v, code, out var l, out error)) return false; LeaseSeconds = l; break;
                case OptRenewalTime: if (!Seconds32(v, code, out var t1, out error)) return false; RenewalSeconds = t1; break;
                case OptRebindingTime: if (!Seconds32(v, code, out var t2, out error)) return false; RebindingSeconds = t2; break;
                case OptClientId:
                    if (len < 2) { error = "option 61 (client identifier) shorter than 2 bytes"; return false; }
                    ClientId = v.ToArray();
                    break;
                case OptParameterRequest: ParameterRequests = v.ToArray(); break;
                case OptMaxMessageSize:
                    if (len != 2) { error = "option 57 (maximum message size) is not 2 bytes"; return false; }
                    MaxMessageSize = BinaryPrimitives.ReadUInt16BigEndian(v);
                    break;
                case OptMessage: Text = System.Text.Encoding.ASCII.GetString(v); break;
                case OptOverload: break; // options in sname/file: nothing this client reads lives there
            }
        }
        error = "";
        return true;
    }

    private static bool Address(ReadOnlySpan<byte> v, byte code, out IPAddress address, out string error)
    {
        address = IPAddress.Any;
        if (v.Length != 4) { error = $"option {code} is {v.Length} bytes, an IPv4 address is 4"; return false; }
        address = new IPAddress(v);
        error = "";
        return true;
    }

    private static bool Seconds32(ReadOnlySpan<byte> v, byte code, out uint value, out string error)
    {
        value = 0;
        if (v.Length != 4) { error = $"option {code} is {v.Length} bytes, a time is 4"; return false; }
        value = BinaryPrimitives.ReadUInt32BigEndian(v);
        error = "";
        return true;
    }

    /// <summary>Writes the message; returns its length. The buffer must hold <see cref="MaxEmitLength"/>.</summary>
    public int Emit(Span<byte> b)
    {
        if (b.Length < MaxEmitLength) throw new ArgumentException($"a DHCP message buffer needs {MaxEmitLength} bytes", nameof(b));
        b[..MaxEmitLength].Clear();
        b[0] = Op;
        b[1] = 1; // Ethernet
        b[2] = 6;
        BinaryPrimitives.WriteUInt32BigEndian(b[4..], TransactionId);
        BinaryPrimitives.WriteUInt16BigEndian(b[8..], Seconds);
        BinaryPrimitives.WriteUInt16BigEndian(b[10..], Flags);
        WriteAddress(b[12..], ClientAddress);
        WriteAddress(b[16..], YourAddress);
        WriteAddress(b[20..], NextServerAddress);
        WriteAddress(b[24..], RelayAddress);
        HardwareAddress.AsSpan(0, Math.Min(16, HardwareAddress.Length)).CopyTo(b[28..]);
        BinaryPrimitives.WriteUInt32BigEndian(b[FixedLength..], MagicCookie);

        int i = MinLength;
        void Option(Span<byte> buf, byte code, ReadOnlySpan<byte> value)
        {
            // 3 bytes stay free for option 255 and the length check of the next one.
            if (value.Length > 255 || i + 2 + value.Length > MaxEmitLength - 1) throw new ArgumentException($"option {code} does not fit a {MaxEmitLength}-byte DHCP message");
            buf[i++] = code;
            buf[i++] = (byte)value.Length;
            value.CopyTo(buf[i..]);
            i += value.Length;
        }
        Span<byte> four = stackalloc byte[4];
        if (MessageType is { } type) Option(b, OptMessageType, [(byte)type]);
        if (ClientId is { } id) Option(b, OptClientId, id);
        if (RequestedAddress is { } req) { WriteAddress(four, req); Option(b, OptRequestedAddress, four); }
        if (ServerId is { } sid) { WriteAddress(four, sid); Option(b, OptServerId, four); }
        if (SubnetMask is { } mask) { WriteAddress(four, mask); Option(b, OptSubnetMask, four); }
        if (Routers is { Length: > 0 } routerList)
        {
            Span<byte> list = stackalloc byte[4 * Math.Min(routerList.Length, 63)];
            for (int r = 0; r < list.Length / 4; r++) WriteAddress(list[(4 * r)..], routerList[r]);
            Option(b, OptRouter, list);
        }
        if (LeaseSeconds is { } lease) { BinaryPrimitives.WriteUInt32BigEndian(four, lease); Option(b, OptLeaseTime, four); }
        if (RenewalSeconds is { } t1) { BinaryPrimitives.WriteUInt32BigEndian(four, t1); Option(b, OptRenewalTime, four); }
        if (RebindingSeconds is { } t2) { BinaryPrimitives.WriteUInt32BigEndian(four, t2); Option(b, OptRebindingTime, four); }
        if (MaxMessageSize is { } max) { BinaryPrimitives.WriteUInt16BigEndian(four, max); Option(b, OptMaxMessageSize, four[..2]); }
        if (ParameterRequests is { } prl) Option(b, OptParameterRequest, prl);
        if (Text is { } text) Option(b, OptMessage, System.Text.Encoding.ASCII.GetBytes(text));
        b[i++] = OptEnd;
        // BOOTP relays and old servers expect at least 300 bytes (RFC 1542 §2.1).
        return Math.Max(i, 300);
    }

    private static void WriteAddress(Span<byte> to, IPAddress address)
    {
        if (!address.TryWriteBytes(to, out int n) || n != 4) throw new ArgumentException($"{address} is not an IPv4 address");
    }

    public override string ToString() =>
        $"{MessageType?.ToString().ToUpperInvariant() ?? (IsReply ? "BOOTREPLY" : "BOOTREQUEST")} xid 0x{TransactionId:x8}" +
        (YourAddress.Equals(IPAddress.Any) ? "" : $" yiaddr {YourAddress}") + (ClientAddress.Equals(IPAddress.Any) ? "" : $" ciaddr {ClientAddress}") +
        (ServerId is null ? "" : $" server {ServerId}");
}
