using System.Net;
using System.Net.Sockets;
using System.Text;
using NUnit.Framework;

namespace LegacyTests;

/// <summary>Ordinary client tests: each opens connections to the echo server named by
/// LEGACY_SERVER and records what the server saw in the file named by LEGACY_OUT.</summary>
public class ClientTests
{
    private static IPEndPoint Server => IPEndPoint.Parse(Environment.GetEnvironmentVariable("LEGACY_SERVER")
        ?? throw new InvalidOperationException("set LEGACY_SERVER to the echo server's ip:port"));

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    public async Task The_server_answers_a_tcp_client(int n)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(Server);
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.UTF8.GetBytes($"test {n}\n"));
        var buffer = new byte[256];
        int read = await stream.ReadAsync(buffer);
        string reply = Encoding.UTF8.GetString(buffer, 0, read).Trim();
        Assert.That(reply, Does.StartWith("you are "));
        if (Environment.GetEnvironmentVariable("LEGACY_OUT") is { } file)
            lock (typeof(ClientTests)) File.AppendAllText(file, $"local={client.Client.LocalEndPoint} {reply}\n");
    }
}
