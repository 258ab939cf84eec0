using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

var builder = WebApplication.CreateBuilder(args);

// The one line that lets kestrel-cluster run this app as N workers; run alone, nothing changes.
builder.WebHost.UseClusterTransport();

var app = builder.Build();

// Work that holds this process for 3 seconds, one request at a time (a single-threaded Node
// process in the cluster tutorials): with 2 workers, two of them at once take 3 s, not 6.
var busy = new SemaphoreSlim(1, 1);

app.MapGet("/", () => $"Hello from {Environment.ProcessId}");

app.MapGet("/check", async (CancellationToken cancellationToken) =>
{
    await busy.WaitAsync(cancellationToken);
    try
    {
        await Task.Delay(TimeSpan.FromSeconds(3), cancellationToken);
        return $"Checked by {Environment.ProcessId}";
    }
    finally
    {
        busy.Release();
    }
});

app.MapGet("/cluster", (IServer server) => new
{
    pid = Environment.ProcessId,
    workerId = Environment.GetEnvironmentVariable("KESTREL_CLUSTER_WORKER_ID"),
    generation = Environment.GetEnvironmentVariable("KESTREL_CLUSTER_GENERATION"),
    addresses = server.Features.Get<IServerAddressesFeature>()?.Addresses.ToArray() ?? [],
});

app.Run();

public partial class Program;
