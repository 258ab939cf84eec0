using KestrelCluster.Testing;

// Started without KESTREL_CLUSTER_CHANNEL, this program tests itself the way a test project would:
// ClusterApplicationFactory runs a supervisor in this process and two workers, each this same program
// started by the supervisor (so with KESTREL_CLUSTER_CHANNEL), serving the web app below.
if (Environment.GetEnvironmentVariable("KESTREL_CLUSTER_CHANNEL") is null && args is ["--no-dispose"])
{
    // A test process that ends without disposing its factory: the workers must not outlive it.
    var leaked = new ClusterApplicationFactory<Program>().WithWorkers(2).WithOutput(Console.Error.WriteLine);
    await leaked.StartAsync();
    Console.WriteLine($"workers: {string.Join(',', (await leaked.GetWorkersAsync()).Select(w => w.Pid))}");
    return 0;
}

if (Environment.GetEnvironmentVariable("KESTREL_CLUSTER_CHANNEL") is null)
{
    await using var cluster = new ClusterApplicationFactory<Program>().WithWorkers(2).WithOutput(Console.Error.WriteLine);
    using var client = cluster.CreateClient();
    var answer = await client.GetStringAsync("/");
    var workers = await cluster.GetWorkersAsync();
    Console.WriteLine($"answer: {answer}");
    Console.WriteLine($"workers: {string.Join(',', workers.Select(w => w.Pid))}");
    return 0;
}

var builder = WebApplication.CreateBuilder(args);
builder.WebHost.UseClusterTransport();
var app = builder.Build();
app.MapGet("/", () => $"Hello from {Environment.ProcessId}");
app.Run();
return 0;

public partial class Program;
