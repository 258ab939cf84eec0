using KestrelCluster;
using Microsoft.AspNetCore.Http.Connections.Features;
using Microsoft.AspNetCore.SignalR;

var builder = WebApplication.CreateBuilder(args);

// Run by kestrel-cluster, this app is one of N workers; run alone, nothing changes.
builder.WebHost.UseClusterTransport(options =>
{
    if (Environment.GetEnvironmentVariable("CHAT_DRAIN_SECONDS") is { Length: > 0 } seconds)
    {
        options.DrainTimeout = TimeSpan.FromSeconds(int.Parse(seconds));
    }
});
builder.Services.AddSignalR().AddMessagePackProtocol().AddKestrelCluster();
builder.Services.AddSingleton<IUserIdProvider, QueryUserIdProvider>();

var app = builder.Build();

app.MapHub<ChatHub>("/chat");
app.MapPost("/announce", (IHubContext<ChatHub> hub, string text) => hub.Clients.All.SendAsync("message", "server", text));
app.MapGet("/", () => $"Hello from {Environment.ProcessId}");

app.Run();

internal sealed class ChatHub(IClusterWorker worker) : Hub
{
    public WorkerInfo WhoAmI() => new(Environment.ProcessId, worker.Id, worker.Generation, Context.ConnectionId, Context.Features.Get<IHttpTransportFeature>()?.TransportType.ToString() ?? "unknown");

    public Task Send(string text) => Clients.All.SendAsync("message", Context.ConnectionId, text);

    public Task SendOthers(string text) => Clients.Others.SendAsync("message", Context.ConnectionId, text);

    public Task SendAllExcept(string[] excluded, string text) => Clients.AllExcept(excluded).SendAsync("message", Context.ConnectionId, text);

    public Task Join(string group) => Groups.AddToGroupAsync(Context.ConnectionId, group);

    // Group management for a connection that may live on another worker.
    public Task AddToGroup(string connectionId, string group) => Groups.AddToGroupAsync(connectionId, group);

    public Task RemoveFromGroup(string connectionId, string group) => Groups.RemoveFromGroupAsync(connectionId, group);

    public Task SendGroup(string group, string text) => Clients.Group(group).SendAsync("message", Context.ConnectionId, text);

    public Task SendGroups(string[] groups, string text) => Clients.Groups(groups).SendAsync("message", Context.ConnectionId, text);

    public Task SendGroupExcept(string group, string[] excluded, string text) => Clients.GroupExcept(group, excluded).SendAsync("message", Context.ConnectionId, text);

    public Task SendOthersInGroup(string group, string text) => Clients.OthersInGroup(group).SendAsync("message", Context.ConnectionId, text);

    public Task SendUser(string user, string text) => Clients.User(user).SendAsync("message", Context.ConnectionId, text);

    public Task SendUsers(string[] users, string text) => Clients.Users(users).SendAsync("message", Context.ConnectionId, text);

    public Task SendClient(string connectionId, string text) => Clients.Client(connectionId).SendAsync("message", Context.ConnectionId, text);

    public Task SendClients(string[] connectionIds, string text) => Clients.Clients(connectionIds).SendAsync("message", Context.ConnectionId, text);

    // A client result: the asked client's "answer" handler returns the reply.
    public Task<string> Ask(string connectionId, string question) => Clients.Client(connectionId).InvokeAsync<string>("answer", question, Context.ConnectionAborted);
}

// Transport: how the client reached this worker (WebSockets, ServerSentEvents, LongPolling).
public sealed record WorkerInfo(int Pid, int WorkerId, int Generation, string ConnectionId, string Transport);

// The user is whoever the query string says (?user=alice): enough to test Clients.User across workers.
internal sealed class QueryUserIdProvider : IUserIdProvider
{
    public string? GetUserId(HubConnectionContext connection) => connection.GetHttpContext()?.Request.Query["user"].FirstOrDefault();
}
