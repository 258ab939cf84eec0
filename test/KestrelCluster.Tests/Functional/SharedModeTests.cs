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
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2, extraArguments: ["--balance", "shared"]);
        var firstPids = cluster.WorkerPids.ToList();
        var load = LoadRunner.RunAsync(new Uri($"http://127.0.0.1:{cluster.Port}/"), keepAliveClients: 16, newConnectionClients: 16, TimeSpan.FromSeconds(15));

        var (exitCode, _, stderr) = await cluster.RunCliAsync(CliTimeout, "reload");
        Assert.True(exitCode == 0, stderr);
        var result = await load.WaitAsync(TimeSpan.FromSeconds(90));
        output.WriteLine(result.ToString());

        var workers = await cluster.ListAsync();
        Assert.Equal(2, workers.Count);
        Assert.All(workers, w => Assert.Equal(2, w.Generation));
        Assert.Empty(workers.Select(w => w.Pid).Intersect(firstPids));
        Assert.Equal(0, result.Failed);
        Assert.True(result.Answered > 1000, result.ToString());
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
