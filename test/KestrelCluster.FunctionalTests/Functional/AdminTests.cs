using System.Net;
using System.Text.RegularExpressions;
using KestrelCluster.Load;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

public sealed class AdminTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Readyz_BeforeFirstWorkerReadyAndWhileStopping_Is503OtherwiseOk()
    {
        // Workers that take 3 s to start, so the admin endpoint is up well before any of them is ready.
        await using var cluster = ClusterRun.Start(output,
            ["--workers", "2", "--urls", "http://127.0.0.1:0", "--admin-urls", "http://127.0.0.1:0", "--", "sh", "-c", $"sleep 3; exec '{TestPaths.Dotnet}' '{TestPaths.SampleDll}'"],
            appendSampleCommand: false);
        using var admin = await cluster.AdminClientAsync();

        var early = await admin.GetAsync("/readyz");
        Assert.False(cluster.Lines.Any(l => l.Contains("ready (pid")), "a worker became ready before the first probe; the test cannot tell");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, early.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync("/healthz")).StatusCode);

        await cluster.WaitForLineAsync(new Regex("All 2 workers ready"), ClusterRun.StartTimeout);
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync("/readyz")).StatusCode);

        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");
        var check = client.GetAsync("/check");
        await Wait.UntilAsync(async () => (await cluster.ListAsync()).Any(w => w.OpenConnections > 0), TimeSpan.FromSeconds(10));
        cluster.Signal(ProcessInfo.SIGTERM);

        await Wait.UntilAsync(async () => (await admin.GetAsync("/readyz")).StatusCode == HttpStatusCode.ServiceUnavailable, TimeSpan.FromSeconds(10));
        Assert.False(check.IsCompleted, "/readyz should turn 503 while the drain is still finishing the slow request");
        Assert.Equal(HttpStatusCode.OK, (await check.WaitAsync(TimeSpan.FromSeconds(30))).StatusCode);
        Assert.Equal(0, await cluster.WaitForExitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task Metrics_ScrapedAroundLoad_CountersMoveAndMatchTheConnectionsSent()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2, extraArguments: ["--admin-urls", "http://127.0.0.1:0"]);
        using var admin = await cluster.AdminClientAsync();
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");

        var before = await ScrapeAsync(admin);
        const int Requests = 300;
        for (var i = 0; i < Requests; i++)
        {
            await Http.GetPidAsync(client);
        }

        var load = await LoadRunner.RunAsync(new Uri($"http://127.0.0.1:{cluster.Port}/"), keepAliveClients: 0, newConnectionClients: 4, TimeSpan.FromSeconds(2));
        var expected = Requests + load.Sent;
        // Acknowledgements are counted as the supervisor reads them, a moment after the answer, and the
        // per-worker series are refreshed on the supervisor's 100 ms tick.
        var after = await Wait.ForAsync(
            () => ScrapeAsync(admin),
            m => m["kestrel_cluster_handoff_duration_seconds_count"] >= expected && WorkerTotal(m) >= expected,
            TimeSpan.FromSeconds(10));

        Assert.Equal(0, before["kestrel_cluster_accepted_connections_total"]);
        Assert.Equal(expected, after["kestrel_cluster_accepted_connections_total"]);
        Assert.Equal(expected, after["kestrel_cluster_dispatched_connections_total"]);
        Assert.Equal(expected, after["kestrel_cluster_handoff_duration_seconds_count"]);
        Assert.Equal(expected, WorkerTotal(after));
        Assert.Equal(2, after["kestrel_cluster_worker_count{kestrel_cluster_worker_state=\"ready\"}"]);
        Assert.Equal(0, after["kestrel_cluster_expired_connections_total"]);
    }

    private static double WorkerTotal(Dictionary<string, double> metrics)
        => metrics.Where(m => m.Key.StartsWith("kestrel_cluster_worker_accepted_connections_total{")).Sum(m => m.Value);

    internal static async Task<Dictionary<string, double>> ScrapeAsync(HttpClient admin)
    {
        var text = await admin.GetStringAsync("/metrics");
        return text.Split('\n')
            .Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Select(l => (Name: l[..l.LastIndexOf(' ')], Value: double.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture)))
            .ToDictionary(m => m.Name, m => m.Value);
    }
}
