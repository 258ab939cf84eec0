using Microsoft.AspNetCore.Http.Connections.Features;
using Microsoft.AspNetCore.SignalR;

var builder = WebApplication.CreateBuilder(args);

// Run by kestrel-cluster, this app is one of N workers; run alone, nothing changes.
builder.WebHost.UseClusterTransport();
builder.Services.AddSignalR();

var app = builder.Build();

app.MapHub<ChatHub>("/chat");
app.MapGet("/", () => $"Hello from {Environment.ProcessId}");

app.Run();

internal sealed class ChatHub : Hub
{
    public Task Send(string user, string text) => Clients.All.SendAsync("message", user, text);

    // Which worker holds this connection, and over which transport the client reached it.
    public WhoAmI WhoAmI() => new(Environment.ProcessId, Context.Features.Get<IHttpTransportFeature>()?.TransportType.ToString() ?? "unknown");
}

internal sealed record WhoAmI(int Pid, string Transport);
