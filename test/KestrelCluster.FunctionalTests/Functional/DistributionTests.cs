using System.Diagnostics;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

public sealed class DistributionTests(ITestOutputHelper output)
{
    [Fact]
    public async Task RoundRobin_NewConnectionPerRequest_BothWorkersServeAtLeast40Percent()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");

        var counts = new Dictionary<int, int>();
        for (var i = 0; i < 200; i++)
        {
            var pid = await Http.GetPidAsync(client);
            counts[pid] = counts.GetValueOrDefault(pid) + 1;
        }

        Assert.Equal(2, counts.Count);
        Assert.All(counts.Keys, pid => Assert.Contains(pid, cluster.WorkerPids));
        Assert.All(counts.Values, count => Assert.True(count >= 80, $"a worker served {count} of 200: {string.Join(", ", counts)}"));
    }

    [Fact]
    public async Task RoundRobin_TwentyKeepAliveConnections_ReachBothWorkers()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2);
        var clients = Enumerable.Range(0, 20).Select(_ => Http.KeepAliveClient($"http://127.0.0.1:{cluster.Port}")).ToList();
        try
        {
            var pids = new HashSet<int>();
            var answered = 0;
            for (var round = 0; round < 10; round++)
            {
                foreach (var (pid, _) in await Task.WhenAll(clients.Select(async c => (await Http.GetPidAsync(c), 0))))
                {
                    pids.Add(pid);
                    answered++;
                }
            }

            Assert.Equal(200, answered);
            Assert.Equal(2, pids.Count);
        }
        finally
        {
            clients.ForEach(c => c.Dispose());
        }
    }

    [Fact]
    public async Task SlowRequest_TwoAtOnceWithTwoWorkers_FinishTogetherNotOneAfterAnother()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");

        var stopwatch = Stopwatch.StartNew();
        var answers = await Task.WhenAll(client.GetStringAsync("/check"), client.GetStringAsync("/check"));
        stopwatch.Stop();

        // Each /check holds its process for 3 s: one after the other, the two take 6 s at the least, whatever the
        // machine's speed. The bound is that logical one, not a latency target.
        Assert.All(answers, a => Assert.StartsWith("Checked by ", a));
        Assert.NotEqual(answers[0], answers[1]);
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(6), $"two /check took {stopwatch.Elapsed.TotalSeconds:0.0} s: one after the other");
    }
}
