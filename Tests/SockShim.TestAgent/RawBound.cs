using System.Net;
using System.Net.Sockets;
using System.Text;
using Tmds.Linux;

/// <summary>raw-bound SERVER ADDRESS: a TCP socket bound to ADDRESS:0 through its raw descriptor,
/// behind .NET's back (Socket.IsBound stays false), then connected to the echo server SERVER as an
/// ordinary socket after it: prints "raw LOCAL seen PEER" and "plain LOCAL seen PEER" (PEER: what
/// the server says it saw), or "raw error SocketError message". Run it under the launcher in mode
/// all: the raw socket's own bind is the app's and stays; the plain one gets a pool address.</summary>
internal static class RawBound
{
    public static unsafe int Run(IPEndPoint server, IPAddress address)
    {
        using (var raw = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            var sin = new sockaddr_in { sin_family = LibC.AF_INET };
            address.TryWriteBytes(new Span<byte>(&sin.sin_addr, 4), out _);
            if (LibC.bind((int)raw.Handle, (sockaddr*)&sin, (uint)sizeof(sockaddr_in)) != 0) { Console.WriteLine($"raw bind failed errno {LibC.errno}"); return 1; }
            if (raw.IsBound) { Console.WriteLine("raw IsBound is true: .NET saw the bind, so nothing is tested"); return 1; }
            try
            {
                string seen = Exchange(raw, server);
                Console.WriteLine($"raw {raw.LocalEndPoint} seen {seen}");
            }
            catch (SocketException ex) { Console.WriteLine($"raw error {ex.SocketErrorCode} {ex.Message}"); }
        }
        using (var plain = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            string seen = Exchange(plain, server);
            Console.WriteLine($"plain {plain.LocalEndPoint} seen {seen}");
        }
        return 0;
    }

    private static string Exchange(Socket s, IPEndPoint server)
    {
        s.ReceiveTimeout = 10_000;
        s.Connect(server);
        s.Send("hello\n"u8);
        var buffer = new byte[256];
        int n = s.Receive(buffer);
        return Encoding.ASCII.GetString(buffer, 0, n).Trim().Replace("you are ", "");
    }
}
