using KestrelCluster.Load;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

// --balance shared: the workers accept on the supervisor's listening socket; the supervisor still owns
// lifecycle and reload.
public sealed class SharedModeTests(ITestOutputHelper output)
{
    private static readonly TimeSpan CliTimeout = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task Shared_NewConnectionPerRequest_BothWorkersAnswerOnOnePort()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2, extraArguments: ["--balance", "shared"]);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");

        var pids = new HashSet<int>();
        for (var i = 0; i < 400 && pids.Count < 2; i++)
        {
            pids.Add(await Http.GetPidAsync(client));
        }

        Assert.Equal(cluster.WorkerPids.Order(), pids.Order());
        // The worker reports the public address, not the passed handle.
        using var json = System.Text.Json.JsonDocument.Parse(await client.GetStringAsync("/cluster"));
        Assert.Equal([$"http://127.0.0.1:{cluster.Port}"], json.RootElement.GetProperty("addresses").EnumerateArray().Select(a => a.GetString()));
    }

    [Fact]
    public async Task Shared_ReloadUnderLoad_ReplacesEveryWorkerWithZeroFailedRequests()
    {
        await ClusterScenarios.ReloadUnderLoad_ReplacesEveryWorkerWithZeroFailedRequestsAsync(output, "--balance", "shared");
    }

    [Fact]
    public async Task Shared_SixtyFourKeepAliveConnectionsOpenedLikeWrk_SplitWithinTenPercentBetweenTwoWorkers()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2, extraArguments: ["--balance", "shared"]);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var connections = new List<RawHttpConnection>();
        try
        {
            // Like wrk -c64: every connection is opened first, then each one sends its requests.
            for (var i = 0; i < 64; i++)
            {
                connections.Add(await RawHttpConnection.OpenAsync(cluster.Port, timeout.Token));
            }

            var first = await Task.WhenAll(connections.Select(c => GetPidAsync(c, timeout.Token)));
            var second = await Task.WhenAll(connections.Select(c => GetPidAsync(c, timeout.Token)));

            var split = first.GroupBy(pid => pid).ToDictionary(g => g.Key, g => g.Count());
            output.WriteLine($"split: {string.Join(", ", split.Select(s => $"pid {s.Key}: {s.Value}"))}");
            Assert.Equal(2, split.Count);
            Assert.All(split.Keys, pid => Assert.Contains(pid, cluster.WorkerPids));
            Assert.True(split.Values.Max() / (double)split.Values.Min() <= 1.10, $"max/min {split.Values.Max()}/{split.Values.Min()}");
            // Keep-alive: each connection stays with the worker that accepted it.
            Assert.Equal(first, second);
        }
        finally
        {
            connections.ForEach(c => c.Dispose());
        }
    }

    [Fact]
    public async Task Shared_WorkerKilledWhileConnectionsArrive_NoConnectionOpenedAfterTheKillFails()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2, extraArguments: ["--balance", "shared"]);
        var victim = (await cluster.ListAsync()).Single(w => w.Id == 0).Pid;
        using var stop = new CancellationTokenSource();
        // A new connection per request: every request after the kill is a connection opened after it.
        var load = LoadRunner.RunAsync(new Uri($"http://127.0.0.1:{cluster.Port}/"), keepAliveClients: 0, newConnectionClients: 16, TimeSpan.FromSeconds(60), stop.Token);
        using (var warmup = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}"))
        {
            // The load is under way meanwhile.
            for (var i = 0; i < 50; i++)
            {
                await Http.GetPidAsync(warmup);
            }
        }

        ProcessInfo.Signal(victim, ProcessInfo.SIGKILL);
        await Wait.UntilAsync(() => !ProcessInfo.IsAlive(victim), TimeSpan.FromSeconds(10));
        var killedAt = System.Diagnostics.Stopwatch.GetTimestamp();

        // Until the slot's successor is ready, and a while beyond.
        await cluster.WaitForLineAsync(new System.Text.RegularExpressions.Regex(@"Worker 0 ready \(pid (?!" + victim + @"\b)\d+"), TimeSpan.FromSeconds(60));
        using (var after = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}"))
        {
            for (var i = 0; i < 50; i++)
            {
                await Http.GetPidAsync(after);
            }
        }

        stop.Cancel();
        var result = await load.WaitAsync(TimeSpan.FromSeconds(90));
        output.WriteLine(result.ToString());
        var afterKill = result.Failures.Where(f => f.StartedAt >= killedAt).ToList();
        Assert.True(afterKill.Count == 0, string.Join("\n", afterKill.Take(10).Select(f => $"{f.Kind} {f.Detail}")));
        Assert.True(result.Answered > 100, result.ToString());
    }

    [Fact]
    public async Task Shared_ScaleTwoToOneUnderLoad_NoRequestFails()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2, extraArguments: ["--balance", "shared"]);
        using var stop = new CancellationTokenSource();
        var load = LoadRunner.RunAsync(new Uri($"http://127.0.0.1:{cluster.Port}/"), keepAliveClients: 8, newConnectionClients: 16, TimeSpan.FromSeconds(60), stop.Token);
        using (var warmup = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}"))
        {
            // The load is under way meanwhile.
            for (var i = 0; i < 50; i++)
            {
                await Http.GetPidAsync(warmup);
            }
        }

        var (exitCode, _, stderr) = await cluster.RunCliAsync(CliTimeout, "scale", "1");
        Assert.True(exitCode == 0, stderr);
        var workers = await Wait.ForAsync(cluster.ListAsync, w => w.Count == 1, TimeSpan.FromSeconds(60));
        var survivor = workers.Single().Pid;
        // Load goes on against the one worker left.
        using (var after = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}"))
        {
            for (var i = 0; i < 50; i++)
            {
                Assert.Equal(survivor, await Http.GetPidAsync(after));
            }
        }

        stop.Cancel();
        var result = await load.WaitAsync(TimeSpan.FromSeconds(90));
        output.WriteLine(result.ToString());
        Assert.True(result.Failed == 0, string.Join("\n", result.Failures.Take(10).Select(f => $"{f.Kind} {f.Detail}")));
        Assert.True(result.Answered > 100, result.ToString());
    }

    private static async Task<int> GetPidAsync(RawHttpConnection connection, CancellationToken cancellationToken)
    {
        var response = await connection.GetAsync("/", cancellationToken);
        Assert.Equal(200, response.Status);
        Assert.StartsWith("Hello from ", response.Body);
        return int.Parse(response.Body["Hello from ".Length..]);
    }

    [Fact]
    public async Task Shared_Sigterm_SupervisorExitsZeroAndPortIsFree()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2, extraArguments: ["--balance", "shared"]);
        var port = cluster.Port;

        cluster.Signal(ProcessInfo.SIGTERM);

        Assert.Equal(0, await cluster.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.All(cluster.WorkerPids, pid => Assert.False(ProcessInfo.IsAlive(pid), $"worker {pid} outlived the supervisor"));
        using var probe = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        probe.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, port));
    }
}
