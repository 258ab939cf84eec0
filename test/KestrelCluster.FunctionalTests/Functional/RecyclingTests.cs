using System.Text.RegularExpressions;
using KestrelCluster.Load;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

public sealed class RecyclingTests(ITestOutputHelper output)
{
    [Fact]
    public async Task MaxMemory_WorkerGrowsPastLimitUnderLoad_ReplacedWithZeroFailedRequests()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2, extraArguments: ["--max-memory", "200M"]);
        var load = LoadRunner.RunAsync(new Uri($"http://127.0.0.1:{cluster.Port}/"), keepAliveClients: 8, newConnectionClients: 8, TimeSpan.FromSeconds(10));
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");

        var answer = await client.GetStringAsync("/demo/allocate?mb=300");
        var grown = int.Parse(answer[..answer.IndexOf(' ')]);

        await cluster.WaitForLineAsync(new Regex($@"Worker \d \(pid {grown}\) uses \d+ MB, above --max-memory 200 MB"), TimeSpan.FromSeconds(30));
        await cluster.WaitForLineAsync(new Regex("Worker replaced"), TimeSpan.FromSeconds(60));
        var result = await load.WaitAsync(TimeSpan.FromSeconds(60));
        output.WriteLine(result.ToString());

        Assert.Equal(0, result.Failed);
        Assert.True(await ProcessInfo.WaitUntilGoneAsync([grown], TimeSpan.FromSeconds(30)));
        var workers = await cluster.ListAsync();
        Assert.Equal(2, workers.Count);
        Assert.All(workers, w => Assert.Equal("ready", w.State));
        Assert.All(workers, w => Assert.InRange(w.MemoryBytes, 1, 200L << 20));
        Assert.DoesNotContain(grown, workers.Select(w => w.Pid));
    }

    [Fact]
    public async Task HeartbeatTimeout_ThreadPoolStarved_WorkerReplacedAndClusterKeepsServing()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2, extraArguments: ["--heartbeat-timeout", "3"]);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");
        var first = await Http.GetPidAsync(client);

        // Round-robin: the next new connection goes to the other worker, which starves itself.
        using var starving = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var starve = client.GetAsync("/demo/starve", starving.Token);
        var line = await cluster.WaitForLineAsync(new Regex(@"Worker \d \(pid (\d+)\) sent no heartbeat for 3 s"), TimeSpan.FromSeconds(30));
        var hung = int.Parse(Regex.Match(line, @"pid (\d+)").Groups[1].Value);

        Assert.NotEqual(first, hung);
        Assert.True(await ProcessInfo.WaitUntilGoneAsync([hung], TimeSpan.FromSeconds(10)));
        await Assert.ThrowsAnyAsync<Exception>(() => starve);
        var answers = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => Http.GetPidAsync(client))).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.DoesNotContain(hung, answers);
        await cluster.WaitForLineAsync(new Regex(@"Worker \d started \(pid (?!" + hung + @"\b)\d+"), TimeSpan.FromSeconds(30), skip: 2);
    }

    [Fact]
    public async Task List_RunningCluster_ShowsCpuAndMemoryPerWorkerAndTheSupervisorRow()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2);
        // Resources are sampled once a second.
        var listed = await Wait.ForAsync(async () => await cluster.ListAllAsync(), l => l.Workers.All(w => w.MemoryBytes > 0), TimeSpan.FromSeconds(15));

        Assert.Equal(cluster.Pid, listed.Supervisor.Pid);
        Assert.InRange(listed.Supervisor.MemoryBytes, 1L << 20, 1L << 30);
        Assert.All(listed.Workers, w => Assert.InRange(w.MemoryBytes, 1L << 20, 1L << 30));
        var table = await cluster.RunCliAsync(TimeSpan.FromSeconds(30), "list");
        Assert.Matches(@"(?m)^id\s+pid\s+gen\s+state\s+uptime\s+restarts\s+open\s+total\s+cpu\s+memory$", table.Stdout);
        Assert.Matches($@"(?m)^-\s+{cluster.Pid}\s+1\s+supervisor\s", table.Stdout);
    }
}
