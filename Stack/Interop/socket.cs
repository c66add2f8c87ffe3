using System.Runtime.InteropServices;
using Tmds.Linux;

namespace SockShim.Stack.Interop;

// sendmmsg and recvmmsg of <sys/socket.h>, which Tmds.LibC lacks, named as in C. The layout of
// mmsghdr is checked against the real header by a test that compiles a C program.
#pragma warning disable IDE1006, CS8981 // C names
[StructLayout(LayoutKind.Sequential)]
internal struct mmsghdr
{
    public msghdr msg_hdr;
    public uint msg_len;
}

internal static unsafe class sys_socket
{
    public const int MSG_WAITFORONE = 0x10000;

    // Plain DllImport (blittable arguments, nothing to marshal): the LibraryImport generator's
    // code trips over the C names. The errno is read with Marshal.GetLastPInvokeError.
    [DllImport("libc", SetLastError = true)]
    public static extern int sendmmsg(int sockfd, mmsghdr* msgvec, uint vlen, int flags);

    [DllImport("libc", SetLastError = true)]
    public static extern int recvmmsg(int sockfd, mmsghdr* msgvec, uint vlen, int flags, timespec* timeout);
}
#pragma warning restore IDE1006, CS8981
