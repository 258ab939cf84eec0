using KestrelCluster;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

var builder = WebApplication.CreateBuilder(args);

// The one line that lets kestrel-cluster run this app as N workers; run alone, nothing changes.
builder.WebHost.UseClusterTransport();

// Each worker has its own in-memory cache; cluster messages keep the workers' copies coherent.
builder.Services.AddSingleton<WorkerCache>();
builder.Services.AddHostedService<CacheInvalidationListener>();

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

app.MapGet("/cluster", (IServer server, IConfiguration configuration) => new
{
    pid = Environment.ProcessId,
    // Which deployment's configuration this worker read (README "Deploying by symlink").
    release = configuration["Release"],
    workerId = Environment.GetEnvironmentVariable("KESTREL_CLUSTER_WORKER_ID"),
    generation = Environment.GetEnvironmentVariable("KESTREL_CLUSTER_GENERATION"),
    addresses = server.Features.Get<IServerAddressesFeature>()?.Addresses.ToArray() ?? [],
});

// An in-memory cache entry per worker: the first read on each worker computes it.
app.MapGet("/cache/{key}", (string key, WorkerCache cache) => cache.Entries.GetOrAdd(key, k => $"{k} from {Environment.ProcessId} at {DateTime.UtcNow:O}"));

// Invalidate here, and tell every other worker to do the same ("*": everything).
app.MapPost("/cache/invalidate/{key}", async (string key, WorkerCache cache, IClusterWorker cluster) =>
{
    cache.Invalidate(key);
    await cluster.BroadcastAsync(new CacheInvalidation(key));
    return Results.Text($"invalidated {key} on {Environment.ProcessId} and told the other workers");
});

// What this worker received from the others and from `kestrel-cluster send`.
app.MapGet("/cache/messages", (WorkerCache cache) => new { pid = Environment.ProcessId, received = cache.Received.ToArray() });

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

internal sealed record CacheInvalidation(string Key);

internal sealed class WorkerCache
{
    public System.Collections.Concurrent.ConcurrentDictionary<string, string> Entries { get; } = new();

    public System.Collections.Concurrent.ConcurrentQueue<string> Received { get; } = new();

    public void Invalidate(string key)
    {
        if (key == "*")
        {
            Entries.Clear();
        }
        else
        {
            Entries.TryRemove(key, out _);
        }
    }
}

// Applies the invalidations other workers (or `kestrel-cluster send all '{"key":"*"}'`) broadcast.
internal sealed class CacheInvalidationListener(IClusterWorker cluster, WorkerCache cache, ILogger<CacheInvalidationListener> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await foreach (var message in cluster.ReadMessagesAsync(stoppingToken))
        {
            var from = message.FromWorkerId is { } id ? $"worker {id}" : "the supervisor";
            cache.Received.Enqueue($"{from}: {message.Payload.GetRawText()}");
            if (message.As<CacheInvalidation>() is { Key: { } key })
            {
                cache.Invalidate(key);
                logger.LogInformation("Invalidated {Key} as {From} asked", key, from);
            }
        }
    }
}
