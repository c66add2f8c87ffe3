namespace SockShim.Stack.Interop;

// Constants of <linux/netlink.h>, <linux/rtnetlink.h> and <linux/if_addr.h> that Tmds.LibC
// lacks, named as in C. Checked against the real headers by a test that compiles a C program.
#pragma warning disable IDE1006, CS8981 // C names
internal static class netlink
{
    public const int NETLINK_ROUTE = 0;

    public const ushort NLMSG_NOOP = 1, NLMSG_ERROR = 2, NLMSG_DONE = 3;

    public const ushort NLM_F_REQUEST = 0x01, NLM_F_MULTI = 0x02, NLM_F_ACK = 0x04;
    public const ushort NLM_F_ROOT = 0x100, NLM_F_MATCH = 0x200, NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;
    public const ushort NLM_F_REPLACE = 0x100, NLM_F_EXCL = 0x200, NLM_F_CREATE = 0x400;

    public const int NLMSG_HDRLEN = 16;
    public const int SOCKADDR_NL_SIZE = 12;
    /// <summary>offsetof(struct sockaddr_nl, nl_groups): the multicast groups a bind joins.</summary>
    public const int SOCKADDR_NL_GROUPS = 8;
    /// <summary>The SOL_NETLINK option that joins a multicast group by number (one above 32 has no bind bit).</summary>
    public const int NETLINK_ADD_MEMBERSHIP = 1;
    public const int NLMSG_ALIGNTO = 4;
    public static int NLMSG_ALIGN(int len) => (len + NLMSG_ALIGNTO - 1) & ~(NLMSG_ALIGNTO - 1);
}

internal static class rtnetlink
{
    public const ushort RTM_NEWADDR = 20, RTM_DELADDR = 21, RTM_GETADDR = 22;
    public const ushort RTM_NEWROUTE = 24, RTM_DELROUTE = 25, RTM_GETROUTE = 26;

    public const int RTA_ALIGNTO = 4;
    public static int RTA_ALIGN(int len) => (len + RTA_ALIGNTO - 1) & ~(RTA_ALIGNTO - 1);
    public const int RTATTR_HDRLEN = 4;
    public const int RTMSG_SIZE = 12;

    public const ushort RTA_DST = 1, RTA_OIF = 4, RTA_TABLE = 15;
    public const byte RTN_UNICAST = 1, RTN_LOCAL = 2;
    public const byte RT_TABLE_MAIN = 254, RT_TABLE_LOCAL = 255;
    public const byte RT_SCOPE_UNIVERSE = 0, RT_SCOPE_HOST = 254;
    public const byte RTPROT_STATIC = 4;
    /// <summary>The multicast group of IPv4 route changes (a bind's nl_groups bit).</summary>
    public const uint RTMGRP_IPV4_ROUTE = 0x40;
    /// <summary>The group of nexthop object changes (RTNLGRP_NEXTHOP): replacing a nexthop changes
    /// the gateway of every route using it, announced only here.</summary>
    public const uint RTNLGRP_NEXTHOP = 32;
}

internal static class if_addr
{
    public const int IFADDRMSG_SIZE = 8;
    public const ushort IFA_ADDRESS = 1, IFA_LOCAL = 2, IFA_LABEL = 3, IFA_CACHEINFO = 6, IFA_FLAGS = 8, IFA_PROTO = 11;
    public const uint IFA_F_NODAD = 0x02, IFA_F_DADFAILED = 0x08, IFA_F_TENTATIVE = 0x40, IFA_F_PERMANENT = 0x80, IFA_F_NOPREFIXROUTE = 0x200;
    public const int IFA_CACHEINFO_SIZE = 16;
    /// <summary>A valid or preferred lifetime of this value never runs out (INFINITY_LIFE_TIME of the kernel).</summary>
    public const uint INFINITY_LIFE_TIME = 0xFFFFFFFF;
}
#pragma warning restore IDE1006, CS8981
