using System.Diagnostics;
using System.Net;
using System.Net.NetworkInformation;
using System.Runtime.CompilerServices;
using SockShim.Stack.Interop;
using SockShim.Stack.Provisioning;
using SockShim.Stack.Wire;

namespace SockShim.Tests.Stack;

/// <summary>The hand-written netlink layouts against the real C headers, and the frames the
/// announcer builds against what the RFCs say.</summary>
public class NetlinkLayoutTests
{
    [Test]
    public void Sizes_and_constants_match_the_linux_headers()
    {
        if (!File.Exists("/usr/bin/gcc") && !File.Exists("/usr/bin/cc")) Assert.Fail("missing precondition: needs a C compiler to read the headers");
        string dir = Directory.CreateTempSubdirectory("sockshim-headers-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "h.c"), """
                #define _GNU_SOURCE
                #include <stdio.h>
                #include <sys/socket.h>
                #include <stddef.h>
                #include <linux/netlink.h>
                #include <linux/rtnetlink.h>
                #include <linux/if_addr.h>
                int main(void) {
                  printf("%zu %zu %zu %zu %zu\n", sizeof(struct nlmsghdr), sizeof(struct sockaddr_nl), sizeof(struct ifaddrmsg), sizeof(struct rtmsg), sizeof(struct rtattr));
                  printf("%d %d %d %d %d %d\n", RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR, RTM_NEWROUTE, RTM_GETROUTE, NETLINK_ROUTE);
                  printf("%d %d %d %d %d %d %d\n", NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_DUMP, NLMSG_ERROR, NLMSG_DONE);
                  printf("%d %d %d %d %d %d %d %d\n", IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS, IFA_PROTO, IFA_F_NODAD, IFA_F_PERMANENT, RTN_LOCAL, RTA_DST);
                  printf("%zu %zu %zu\n", offsetof(struct ifaddrmsg, ifa_index), offsetof(struct rtmsg, rtm_type), offsetof(struct nlmsghdr, nlmsg_seq));
                  printf("%zu %zu %zu %zu %zu %d %d\n", sizeof(struct ifa_cacheinfo), offsetof(struct ifa_cacheinfo, ifa_prefered), offsetof(struct ifa_cacheinfo, ifa_valid),
                         offsetof(struct ifa_cacheinfo, cstamp), offsetof(struct ifa_cacheinfo, tstamp), IFA_CACHEINFO, NLM_F_REPLACE);
                  printf("%d %d %d\n", IFA_F_NOPREFIXROUTE, IFA_F_DADFAILED, IFA_F_TENTATIVE);
                  printf("%zu %d %d %d\n", offsetof(struct sockaddr_nl, nl_groups), RTMGRP_IPV4_ROUTE, NETLINK_ADD_MEMBERSHIP, RTNLGRP_NEXTHOP);
                  printf("%zu %zu %d\n", sizeof(struct mmsghdr), offsetof(struct mmsghdr, msg_len), MSG_WAITFORONE);
                  return 0;
                }
                """);
            var build = Process.Start(new ProcessStartInfo("cc", ["-o", Path.Combine(dir, "h"), Path.Combine(dir, "h.c")]) { RedirectStandardError = true })!;
            string buildErrors = build.StandardError.ReadToEnd();
            build.WaitForExit();
            Assert.That(build.ExitCode, Is.Zero, buildErrors);
            var run = Process.Start(new ProcessStartInfo(Path.Combine(dir, "h")) { RedirectStandardOutput = true })!;
            var lines = run.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
            run.WaitForExit();
            Assert.That(lines[0], Is.EqualTo($"{netlink.NLMSG_HDRLEN} {netlink.SOCKADDR_NL_SIZE} {if_addr.IFADDRMSG_SIZE} {rtnetlink.RTMSG_SIZE} {rtnetlink.RTATTR_HDRLEN}"));
            // The structs are read and written whole: their sizes are the C ones.
            Assert.That(lines[0], Is.EqualTo($"{Unsafe.SizeOf<NetlinkHeader>()} {netlink.SOCKADDR_NL_SIZE} {Unsafe.SizeOf<IfAddrMessage>()} {Unsafe.SizeOf<RouteMessage>()} {rtnetlink.RTATTR_HDRLEN}"));
            Assert.That(lines[5].Split(' ')[0], Is.EqualTo($"{Unsafe.SizeOf<IfAddrCacheInfo>()}"));
            Assert.That(lines[1], Is.EqualTo($"{rtnetlink.RTM_NEWADDR} {rtnetlink.RTM_DELADDR} {rtnetlink.RTM_GETADDR} {rtnetlink.RTM_NEWROUTE} {rtnetlink.RTM_GETROUTE} {netlink.NETLINK_ROUTE}"));
            Assert.That(lines[2], Is.EqualTo($"{netlink.NLM_F_REQUEST} {netlink.NLM_F_ACK} {netlink.NLM_F_EXCL} {netlink.NLM_F_CREATE} {netlink.NLM_F_DUMP} {netlink.NLMSG_ERROR} {netlink.NLMSG_DONE}"));
            Assert.That(lines[3], Is.EqualTo($"{if_addr.IFA_ADDRESS} {if_addr.IFA_LOCAL} {if_addr.IFA_FLAGS} {if_addr.IFA_PROTO} {if_addr.IFA_F_NODAD} {if_addr.IFA_F_PERMANENT} {rtnetlink.RTN_LOCAL} {rtnetlink.RTA_DST}"));
            Assert.That(lines[4], Is.EqualTo("4 7 8"));
            // IfAddrCacheInfo writes preferred at 0, valid at 4, the two timestamps at 8 and 12.
            Assert.That(lines[5], Is.EqualTo($"{if_addr.IFA_CACHEINFO_SIZE} 0 4 8 12 {if_addr.IFA_CACHEINFO} {netlink.NLM_F_REPLACE}"));
            Assert.That(lines[6], Is.EqualTo($"{if_addr.IFA_F_NOPREFIXROUTE} {if_addr.IFA_F_DADFAILED} {if_addr.IFA_F_TENTATIVE}"));
            // sendmmsg and recvmmsg take arrays of mmsghdr: its size and msg_len's place are C's.
            Assert.That(lines[8], Is.EqualTo($"{Unsafe.SizeOf<mmsghdr>()} {System.Runtime.InteropServices.Marshal.OffsetOf<mmsghdr>(nameof(mmsghdr.msg_len))} {sys_socket.MSG_WAITFORONE}"));
            Assert.That(lines[7], Is.EqualTo($"{netlink.SOCKADDR_NL_GROUPS} {rtnetlink.RTMGRP_IPV4_ROUTE} {netlink.NETLINK_ADD_MEMBERSHIP} {rtnetlink.RTNLGRP_NEXTHOP}"));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Test]
    public void A_request_is_emitted_with_every_field_written_and_parses_back()
    {
        var buffer = new byte[64];
        Array.Fill(buffer, (byte)0xA5);
        var w = new NetlinkRequestWriter(buffer, rtnetlink.RTM_NEWADDR, netlink.NLM_F_REQUEST | netlink.NLM_F_ACK, 7);
        new IfAddrMessage(2, 32, 0, 0, 3).Emit(w.Payload(if_addr.IFADDRMSG_SIZE));
        w.Attribute(if_addr.IFA_LOCAL, new byte[] { 192, 0, 2, 9 });
        var message = w.Finish().ToArray();
        Assert.That(message, Has.Length.EqualTo(16 + 8 + 8));
        Assert.That(message, Does.Not.Contain((byte)0xA5), "no field left unwritten");
        // In the host's byte order (little-endian here), at the C offsets: nlmsghdr, then ifaddrmsg.
        Assert.That(message[..16], Is.EqualTo(new byte[] { 32, 0, 0, 0, 20, 0, 5, 0, 7, 0, 0, 0, 0, 0, 0, 0 }));
        Assert.That(message[16..24], Is.EqualTo(new byte[] { 2, 32, 0, 0, 3, 0, 0, 0 }));
        Assert.That(NetlinkHeader.TryParse(message, out var header), Is.True);
        Assert.That(header, Is.EqualTo(new NetlinkHeader(32, rtnetlink.RTM_NEWADDR, netlink.NLM_F_REQUEST | netlink.NLM_F_ACK, 7, 0)));
        Assert.That(IfAddrMessage.TryParse(message.AsSpan(16), out var ifa) && ifa.Index == 3 && ifa.PrefixLength == 32, Is.True);
        var attrs = new RouteAttributeReader(message.AsSpan(24));
        Assert.That(attrs.Next(out var type, out var value), Is.True);
        Assert.That((type, value.ToArray()), Is.EqualTo((if_addr.IFA_LOCAL, new byte[] { 192, 0, 2, 9 })));
        Assert.That(attrs.Next(out _, out _), Is.False);
    }

    /// <summary>The three address requests: the first add stays exclusive, a lease's lifetime
    /// is valid = preferred, a refresh replaces without creating, and a static pool's address is
    /// permanent as before.</summary>
    [TestCase(true, false, 10u, (ushort)(0x01 | 0x04 | 0x400 | 0x200), 0u, 10u)]
    [TestCase(false, true, 7u, (ushort)(0x01 | 0x04 | 0x100), 0u, 7u)]
    [TestCase(true, false, 0xFFFFFFFFu, (ushort)(0x01 | 0x04 | 0x400 | 0x200), 0x80u, 0xFFFFFFFFu)]
    // IPv6: no DAD (0x02) and no prefix route (0x200), on a lease and on a static pool's address.
    [TestCase(true, false, 10u, (ushort)(0x01 | 0x04 | 0x400 | 0x200), 0x02u | 0x200u, 10u, "2001:db8::10")]
    [TestCase(false, true, 7u, (ushort)(0x01 | 0x04 | 0x100), 0x02u | 0x200u, 7u, "2001:db8::10")]
    [TestCase(true, false, 0xFFFFFFFFu, (ushort)(0x01 | 0x04 | 0x400 | 0x200), 0x02u | 0x200u | 0x80u, 0xFFFFFFFFu, "2001:db8::10")]
    public void An_address_request_carries_its_lifetime_and_the_right_flags(bool add, bool refresh, uint lifetime, ushort flags, uint ifaFlags, uint lft, string address = "203.0.113.10")
    {
        var buffer = new byte[SockShim.Stack.Provisioning.Netlink.RouteNetlink.AddressMessageSize];
        ushort extra = add ? (ushort)(netlink.NLM_F_CREATE | netlink.NLM_F_EXCL) : netlink.NLM_F_REPLACE;
        var message = SockShim.Stack.Provisioning.Netlink.RouteNetlink.AddressMessage(buffer, rtnetlink.RTM_NEWADDR, extra, 9, 3, IPAddress.Parse(address), NetlinkProvisioner.Mark, lifetime).ToArray();
        Assert.That(NetlinkHeader.TryParse(message, out var header), Is.True);
        Assert.That(header.Flags, Is.EqualTo(flags));
        Assert.That(refresh, Is.EqualTo((header.Flags & netlink.NLM_F_REPLACE) != 0));
        var attributes = new Dictionary<ushort, byte[]>();
        var attrs = new RouteAttributeReader(message.AsSpan(netlink.NLMSG_HDRLEN + if_addr.IFADDRMSG_SIZE));
        while (attrs.Next(out var type, out var value)) attributes[type] = value.ToArray();
        Assert.That(attributes[if_addr.IFA_PROTO], Is.EqualTo(new[] { NetlinkProvisioner.Mark }), "the mark, also on a refresh");
        Assert.That(BitConverter.ToUInt32(attributes[if_addr.IFA_FLAGS]), Is.EqualTo(ifaFlags));
        Assert.That(IfAddrCacheInfo.TryParse(attributes[if_addr.IFA_CACHEINFO], out var info), Is.True);
        Assert.That(info, Is.EqualTo(new IfAddrCacheInfo(lft, lft)));
        Assert.That(attributes[if_addr.IFA_CACHEINFO].AsSpan(8).ToArray(), Is.All.Zero, "the timestamps are the kernel's");
    }

    [Test]
    public void A_delete_carries_no_lifetime()
    {
        var buffer = new byte[SockShim.Stack.Provisioning.Netlink.RouteNetlink.AddressMessageSize];
        var message = SockShim.Stack.Provisioning.Netlink.RouteNetlink.AddressMessage(buffer, rtnetlink.RTM_DELADDR, 0, 9, 3, IPAddress.Parse("203.0.113.10"), NetlinkProvisioner.Mark, null).ToArray();
        var types = new List<ushort>();
        var attrs = new RouteAttributeReader(message.AsSpan(netlink.NLMSG_HDRLEN + if_addr.IFADDRMSG_SIZE));
        while (attrs.Next(out var type, out _)) types.Add(type);
        Assert.That(types, Is.EqualTo(new[] { if_addr.IFA_LOCAL, if_addr.IFA_ADDRESS }));
    }

    [TestCase(2.9, 2u)]
    [TestCase(0.2, 1u)]
    [TestCase(-5.0, 1u)]
    [TestCase(1e10, 0xFFFFFFFEu)]
    public void A_lease_lifetime_becomes_whole_seconds_rounded_down_at_least_one_and_never_forever(double seconds, uint expected) =>
        Assert.That(NetlinkProvisioner.Seconds(TimeSpan.FromSeconds(seconds)), Is.EqualTo(expected));

    [TestCase(new byte[] { })]
    [TestCase(new byte[] { 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 })]      // length below the header
    [TestCase(new byte[] { 255, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 })]    // length past the buffer
    public void Malformed_headers_are_refused(byte[] bytes) => Assert.That(NetlinkHeader.TryParse(bytes, out _), Is.False);

    [Test]
    public void Malformed_attributes_end_the_walk_without_throwing()
    {
        var attrs = new RouteAttributeReader(new byte[] { 3, 0, 1, 0, 9, 9, 9, 9 }); // rta_len 3 < 4
        Assert.That(attrs.Next(out _, out _), Is.False);
        attrs = new RouteAttributeReader(new byte[] { 40, 0, 1, 0, 9 });             // rta_len past the end
        Assert.That(attrs.Next(out _, out _), Is.False);
    }

    [Test]
    public void A_gratuitous_arp_is_a_request_for_its_own_address_to_broadcast()
    {
        var mac = PhysicalAddress.Parse("02-00-00-00-00-07");
        var frame = Announcer.Frame(IPAddress.Parse("198.51.100.7"), mac);
        Assert.That(frame[..6], Is.EqualTo(new byte[] { 255, 255, 255, 255, 255, 255 }));
        Assert.That(frame[12..14], Is.EqualTo(new byte[] { 0x08, 0x06 }), "ARP");
        Assert.That(frame[20..22], Is.EqualTo(new byte[] { 0, 1 }), "request");
        Assert.That(frame[22..28], Is.EqualTo(mac.GetAddressBytes()), "sender MAC");
        Assert.That(frame[28..32], Is.EqualTo(new byte[] { 198, 51, 100, 7 }), "sender IP");
        Assert.That(frame[38..42], Is.EqualTo(new byte[] { 198, 51, 100, 7 }), "target IP: the same");
    }

    [Test]
    public void The_sender_of_an_arp_frame_is_read_and_anything_else_refused()
    {
        // An ARP reply as on the wire: 192.0.2.20 is at 02:00:00:00:00:14 (to 192.0.2.10), padded to 60 bytes.
        var reply = Convert.FromHexString("02000000000a020000000014" + "0806" + "0001080006040002" + "020000000014c0000214" + "02000000000ac000020a" + new string('0', 36));
        Assert.That(ArpFrames.TryReadSender(reply, out var sender, out var mac), Is.True);
        Assert.That((sender, mac), Is.EqualTo((IPAddress.Parse("192.0.2.20"), PhysicalAddress.Parse("02-00-00-00-00-14"))));
        var probe = ArpFrames.Request(PhysicalAddress.Parse("02-00-00-00-00-07"), IPAddress.Any, IPAddress.Parse("192.0.2.9"));
        Assert.That(ArpFrames.TryReadSender(probe, out sender, out mac) && sender.Equals(IPAddress.Any) && mac.Equals(PhysicalAddress.Parse("02-00-00-00-00-07")), Is.True);
        Assert.That(ArpFrames.TryReadSender(reply.AsSpan(0, 41), out _, out _), Is.False, "short");
        var ipv4 = (byte[])reply.Clone();
        ipv4[13] = 0x00;
        Assert.That(ArpFrames.TryReadSender(ipv4, out _, out _), Is.False, "an IPv4 frame");
        var longAddresses = (byte[])reply.Clone();
        longAddresses[18] = 8;
        Assert.That(ArpFrames.TryReadSender(longAddresses, out _, out _), Is.False, "hardware addresses of 8 bytes");
    }

    [Test]
    public void An_unsolicited_neighbour_advertisement_has_a_valid_checksum_and_the_override_flag()
    {
        var address = IPAddress.Parse("2001:db8:a::100");
        var frame = Announcer.Frame(address, PhysicalAddress.Parse("02-00-00-00-00-08"));
        Assert.That(frame, Has.Length.EqualTo(14 + 40 + 32));
        Assert.That(frame[12..14], Is.EqualTo(new byte[] { 0x86, 0xDD }));
        Assert.That(frame[20], Is.EqualTo(58), "next header ICMPv6");
        Assert.That(frame[21], Is.EqualTo(255), "hop limit 255, as RFC 4861 requires");
        var icmp = frame[54..];
        Assert.That(icmp[0], Is.EqualTo(136));
        Assert.That(icmp[4] & 0x20, Is.EqualTo(0x20), "override");
        Assert.That(new IPAddress(icmp[8..24]), Is.EqualTo(address));
        // The one's-complement sum over pseudo-header and message, checksum included, is 0xFFFF.
        var pseudo = frame[22..54].Concat(new byte[] { 0, 0, 0, (byte)icmp.Length, 0, 0, 0, 58 }).Concat(icmp).ToArray();
        uint sum = 0;
        for (int i = 0; i < pseudo.Length; i += 2) sum += (uint)(pseudo[i] << 8 | pseudo[i + 1]);
        while (sum >> 16 != 0) sum = (sum & 0xffff) + (sum >> 16);
        Assert.That(sum, Is.EqualTo(0xFFFF));
    }
}
