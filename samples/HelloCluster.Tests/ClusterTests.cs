using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using KestrelCluster.Testing;
using Xunit.Abstractions;

namespace HelloCluster.Tests;

/// <summary>
/// The same app as <see cref="InMemoryTests"/>, as a real cluster: a supervisor in this test process and two
/// worker processes of HelloCluster.dll behind one port on 127.0.0.1.
/// </summary>
public sealed class ClusterTests : IClassFixture<ClusterApplicationFactory<Program>>
{
    private readonly ClusterApplicationFactory<Program> _cluster;
    private readonly ITestOutputHelper _output;

    public ClusterTests(ClusterApplicationFactory<Program> cluster, ITestOutputHelper output)
    {
        _cluster = cluster;
        _output = output;
        // The fixture outlives each test: its output goes to the test that runs now.
        cluster.WithOutput(output.WriteLine);
    }

    [Fact]
    public async Task GetRoot_TwoWorkers_EachWorkerProcessAnswers()
    {
        using var client = _cluster.CreateClient();
        // A new connection per request, so round-robin shows: keep-alive would stay with one worker.
        client.DefaultRequestHeaders.ConnectionClose = true;
        var workerPids = (await _cluster.GetWorkersAsync()).Select(w => w.Pid).ToHashSet();

        var answers = new List<string>();
        for (var i = 0; i < 10; i++)
        {
            using var response = await client.GetAsync("/");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            answers.Add(await response.Content.ReadAsStringAsync());
        }

        Assert.Equal(2, workerPids.Count);
        Assert.DoesNotContain(Environment.ProcessId, workerPids);
        Assert.Equal(workerPids.Select(pid => $"Hello from {pid}").Order(), answers.Distinct().Order());
    }

    [Fact]
    public async Task GetCluster_Worker_ReportsItsIdGenerationAndTheClusterAddress()
    {
        using var client = _cluster.CreateClient();

        var cluster = await client.GetFromJsonAsync<JsonElement>("/cluster");

        var worker = Assert.Single(await _cluster.GetWorkersAsync(), w => w.Pid == cluster.GetProperty("pid").GetInt32());
        Assert.Equal(worker.Id.ToString(), cluster.GetProperty("workerId").GetString());
        Assert.Equal(worker.Generation.ToString(), cluster.GetProperty("generation").GetString());
        var addresses = cluster.GetProperty("addresses").EnumerateArray().Select(a => a.GetString()).ToList();
        Assert.Equal([_cluster.ServerAddress.GetLeftPart(UriPartial.Authority)], addresses);
        Assert.NotEqual(0, _cluster.ServerAddress.Port);
    }

    [Fact]
    public async Task GetRoot_WorkerKilledMidTest_OtherWorkersKeepAnsweringAndTheSlotIsRestarted()
    {
        // Its own cluster: this test kills a worker, which the shared fixture's other tests should not see.
        await using var cluster = new ClusterApplicationFactory<Program>().WithWorkers(2).WithOutput(_output.WriteLine);
        using var client = cluster.CreateClient();
        client.DefaultRequestHeaders.ConnectionClose = true;
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/")).StatusCode);

        var killed = await cluster.KillWorkerAsync(0);

        Assert.False(IsAlive(killed.Pid));
        for (var i = 0; i < 20; i++)
        {
            using var response = await client.GetAsync("/");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.NotEqual($"Hello from {killed.Pid}", await response.Content.ReadAsStringAsync());
        }

        await cluster.WaitForReadyAsync();
        var replacement = Assert.Single(await cluster.GetWorkersAsync(), w => w.Id == 0);
        Assert.NotEqual(killed.Pid, replacement.Pid);
        Assert.Equal(ClusterWorkerState.Ready, replacement.State);
        Assert.Equal(1, replacement.Restarts);
    }

    [Fact]
    public async Task ReloadAndScale_RunningCluster_NewGenerationAndWorkerCountServe()
    {
        await using var cluster = new ClusterApplicationFactory<Program>().WithWorkers(1).WithOutput(_output.WriteLine);
        await cluster.StartAsync();
        var before = Assert.Single(await cluster.GetWorkersAsync());

        await cluster.ReloadAsync();
        await cluster.WaitForReadyAsync();
        var reloaded = Assert.Single(await cluster.GetWorkersAsync());
        await cluster.ScaleAsync(2);
        var scaled = await cluster.GetWorkersAsync();

        Assert.Equal((1, 0), (before.Generation, before.Id));
        Assert.Equal(2, reloaded.Generation);
        Assert.NotEqual(before.Pid, reloaded.Pid);
        Assert.False(IsAlive(before.Pid));
        Assert.Equal([0, 1], scaled.Select(w => w.Id));
        Assert.All(scaled, w => Assert.Equal(ClusterWorkerState.Ready, w.State));
        using var client = cluster.CreateClient();
        var answer = await client.GetStringAsync("/");
        Assert.Contains(answer, scaled.Select(w => $"Hello from {w.Pid}"));
    }

    private static bool IsAlive(int pid) => Infrastructure.StandaloneApp.IsAlive(pid);
}
