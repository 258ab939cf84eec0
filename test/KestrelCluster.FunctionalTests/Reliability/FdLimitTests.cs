using System.Text.RegularExpressions;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Reliability;

public sealed class FdLimitTests(ITestOutputHelper output)
{
    // A worker starts with about 200 fds open (one per loaded assembly, pipes, its channel): this leaves the
    // limited worker room for some connections, while the other one (the test's limit) has plenty.
    private const int LimitedWorkerFds = 320;
    private const int HeldConnections = 400;

    [Fact]
    public async Task WorkerAtItsFdLimit_KeepsRunning_OtherWorkerTakesTheRestAndBothServeAfterwards()
    {
        var script = $"if [ \"$KESTREL_CLUSTER_WORKER_ID\" = 0 ]; then ulimit -n {LimitedWorkerFds}; fi; exec '{TestPaths.Dotnet}' '{TestPaths.SampleDll}'";
        await using var cluster = ClusterRun.Start(output, ["--workers", "2", "--urls", "http://127.0.0.1:0", "--", "bash", "-c", script], appendSampleCommand: false);
        await cluster.WaitForLineAsync(new Regex("All 2 workers ready"), ClusterRun.StartTimeout);
        var limited = int.Parse(Regex.Match(cluster.Output, @"Worker 0 started \(pid (\d+)").Groups[1].Value);
        var other = int.Parse(Regex.Match(cluster.Output, @"Worker 1 started \(pid (\d+)").Groups[1].Value);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));

        // Keep-alive connections, together more than the limited worker can hold, all opened before any request:
        // the limited worker is full before it has served anything (its first requests load code lazily).
        var connections = new List<RawHttpConnection>();
        var servedBy = new Dictionary<int, int>();
        try
        {
            for (var batch = 0; batch < HeldConnections / 20; batch++)
            {
                connections.AddRange(await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => RawHttpConnection.OpenAsync(cluster.Port, timeout.Token))));
            }

            foreach (var response in await Task.WhenAll(connections.Select(c => c.GetAsync("/", timeout.Token))))
            {
                Assert.Equal(200, response.Status);
                var pid = PidOf(response);
                servedBy[pid] = servedBy.GetValueOrDefault(pid) + 1;
            }

            output.WriteLine($"held: {string.Join(", ", servedBy.Select(s => $"pid {s.Key}: {s.Value}"))}; limited worker holds {ProcessInfo.FdCount(limited)} fds");
            Assert.True(ProcessInfo.IsAlive(limited), "the worker at its fd limit exited");
            Assert.InRange(servedBy.GetValueOrDefault(limited), 0, LimitedWorkerFds);
            Assert.True(servedBy.GetValueOrDefault(other) > HeldConnections / 2, "the other worker should have taken what the limited one could not");
        }
        finally
        {
            connections.ForEach(c => c.Dispose());
        }

        // Once the pressure passes, both workers serve normally: new connections until each pid answered.
        var seen = new HashSet<int>();
        var requests = 0;
        while (seen.Count < 2)
        {
            Assert.True(requests++ < 200, $"after {requests} requests only {string.Join(", ", seen)} answered");
            using var connection = await RawHttpConnection.OpenAsync(cluster.Port, timeout.Token);
            var response = await connection.GetAsync("/", timeout.Token);
            Assert.Equal(200, response.Status);
            seen.Add(PidOf(response));
        }

        Assert.Equal(new[] { limited, other }.Order(), seen.Order());
        Assert.Equal(2, cluster.WorkerPids.Count);
        Assert.DoesNotContain("supervisor is gone", cluster.Output);
        // Once per episode, not once per connection.
        Assert.Single(cluster.Lines, l => l.Contains("close to its open file limit"));
    }

    private static int PidOf(RawResponse response)
    {
        Assert.StartsWith("Hello from ", response.Body);
        return int.Parse(response.Body["Hello from ".Length..]);
    }
}
