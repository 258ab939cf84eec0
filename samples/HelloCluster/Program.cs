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

// Operations demos: memory that only grows (see --max-memory) and a thread pool that starves
// (see --heartbeat-timeout). Both hurt only the worker that serves them.
var hoard = new List<byte[]>();
app.MapGet("/demo/allocate", (int mb) =>
{
    lock (hoard)
    {
        for (var i = 0; i < Math.Clamp(mb, 1, 4096); i++)
        {
            var block = new byte[1 << 20];
            Array.Fill(block, (byte)1); // touch every page so it counts as resident
            hoard.Add(block);
        }

        return $"{Environment.ProcessId} holds {hoard.Count} MB";
    }
});

app.MapGet("/demo/starve", () =>
{
    // Sync-over-async gone wrong: every thread-pool thread ends up blocked on a gate nobody opens.
    var gate = new ManualResetEventSlim();
    for (var i = 0; i < 1000; i++)
    {
        ThreadPool.UnsafeQueueUserWorkItem(_ => gate.Wait(), null);
    }

    gate.Wait();
    return "never";
});

app.Run();

public partial class Program;
