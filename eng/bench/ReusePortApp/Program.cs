using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;

var builder = WebApplication.CreateBuilder(args);

// Kestrel's socket transport does not set SO_REUSEPORT; with it, the kernel spreads new connections
// over every process bound to the port: the floor for two .NET processes, no handoff at all.
builder.WebHost.UseSockets(options => options.CreateBoundListenSocket = endpoint =>
{
    if (endpoint is not IPEndPoint ip)
    {
        return SocketTransportOptions.CreateDefaultBoundListenSocket(endpoint);
    }

    var socket = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
    const int SolSocket = 1, SoReusePort = 15; // Linux values
    socket.SetRawSocketOption(SolSocket, SoReusePort, BitConverter.GetBytes(1));
    socket.Bind(ip);
    return socket;
});

builder.Logging.SetMinimumLevel(LogLevel.Warning);

var app = builder.Build();

// The same answer as samples/HelloCluster's "/".
app.MapGet("/", () => $"Hello from {Environment.ProcessId}");

app.Run();
