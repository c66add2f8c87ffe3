// A C-style client/server ported from C, written against the Berkeley calls alone. This very
// file is compiled twice: against Tmds.LibC (CStyle/LibC) and against SockShim (CStyle/Shim);
// the two builds differ only in their `using static` line (Usings.cs).
//   EchoProgram N [--tuple]   N clients connect to a local server; each prints the address
//                             getsockname() gives and the one the server's accept() saw.
// With --tuple the clients ask for AF_INET_TUPLE (the value the method's header defines).
using Tmds.Linux;

unsafe
{
    const int AF_INET_TUPLE_VALUE = 0x5449;
    int n = args.Length > 0 && int.TryParse(args[0], out var count) ? count : 5;
    int family = args.Contains("--tuple") ? AF_INET_TUPLE_VALUE : AF_INET;

    int server = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address = default;
    address.sin_family = AF_INET;
    address.sin_port = 0;
    byte* loopback = (byte*)&address.sin_addr;
    loopback[0] = 127; loopback[1] = 0; loopback[2] = 0; loopback[3] = 1;
    if (bind(server, (sockaddr*)&address, (socklen_t)sizeof(sockaddr_in)) != 0 || listen(server, 64) != 0)
    {
        Console.WriteLine($"server: errno {errno}");
        return 1;
    }
    socklen_t length = (socklen_t)sizeof(sockaddr_in);
    getsockname(server, (sockaddr*)&address, &length);

    var clients = new List<int>();
    for (int i = 0; i < n; i++)
    {
        int client = socket(family, SOCK_STREAM, 0);
        if (client < 0)
        {
            Console.WriteLine($"client {i}: socket failed, errno {errno}");
            return 1;
        }
        clients.Add(client);
        if (connect(client, (sockaddr*)&address, (socklen_t)sizeof(sockaddr_in)) != 0)
        {
            Console.WriteLine($"client {i}: connect failed, errno {errno}");
            return 1;
        }
        sockaddr_in mine = default, seen = default;
        socklen_t mineLength = (socklen_t)sizeof(sockaddr_in), seenLength = (socklen_t)sizeof(sockaddr_in);
        int accepted = accept(server, (sockaddr*)&seen, &seenLength);
        getsockname(client, (sockaddr*)&mine, &mineLength);
        Console.WriteLine($"client {i}: getsockname {Text(&mine)} server saw {Text(&seen)}");
        close(accepted);
    }
    foreach (int client in clients) close(client);
    close(server);
    return 0;

    static string Text(sockaddr_in* a)
    {
        byte* b = (byte*)&a->sin_addr;
        return $"{b[0]}.{b[1]}.{b[2]}.{b[3]}:{ntohs(a->sin_port)}";
    }
}
