using System.Net;
using System.Text.RegularExpressions;
using KestrelCluster.Load;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

// --accept-threads: several supervisor threads accept on one TCP endpoint, each on its own SO_REUSEPORT socket.
public sealed class AcceptThreadsTests(ITestOutputHelper output)
{
    private static readonly TimeSpan CliTimeout = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task TwoAcceptThreads_BurstOfNewConnections_BothThreadsTakeConnectionsAndEveryOneIsAnswered()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2, extraArguments: ["--accept-threads", "2", "--admin-urls", "http://127.0.0.1:0"]);
        await cluster.WaitForLineAsync(new Regex($@"Accepting on 127\.0\.0\.1:{cluster.Port} on 2 threads"), TimeSpan.FromSeconds(10));
        using var admin = await cluster.AdminClientAsync();

        const int Connections = 4000;
        var churn = await ConnectionChurn.RunAsync(new IPEndPoint(IPAddress.Loopback, cluster.Port), Connections, concurrency: 64).WaitAsync(TimeSpan.FromMinutes(3));
        output.WriteLine(churn.ToString());
        var perThread = (await AdminTests.ScrapeAsync(admin))
            .Where(m => m.Key.StartsWith($"kestrel_cluster_accept_thread_accepted_connections_total{{kestrel_cluster_endpoint=\"127.0.0.1:{cluster.Port}\","))
            .ToList();
        output.WriteLine(string.Join('\n', perThread.Select(m => $"{m.Key} {m.Value}")));

        Assert.Equal(0, churn.Failed);
        Assert.Equal(Connections, churn.Answered);
        Assert.Equal(2, perThread.Count);
        Assert.All(perThread, m => Assert.True(m.Value > 0, $"{m.Key} took no connection"));
        Assert.Equal(Connections, perThread.Sum(m => m.Value));
    }

    [Fact]
    public async Task TwoAcceptThreads_ReloadUnderLoad_ReplacesEveryWorkerWithZeroFailedRequests()
    {
        await ClusterScenarios.ReloadUnderLoad_ReplacesEveryWorkerWithZeroFailedRequestsAsync(output, "--accept-threads", "2");
    }

    [Fact]
    public async Task TwoAcceptThreads_SigtermUnderLoad_EveryRequestSentIsAnsweredAndSupervisorExitsZero()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2, extraArguments: ["--accept-threads", "2"]);
        using var stopLoad = new CancellationTokenSource();
        var load = LoadRunner.RunAsync(new Uri($"http://127.0.0.1:{cluster.Port}/"), keepAliveClients: 8, newConnectionClients: 8, TimeSpan.FromMinutes(2), stopLoad.Token);
        await Wait.UntilAsync(async () => (await cluster.ListAsync()).Sum(w => w.TotalConnections) > 500, TimeSpan.FromSeconds(60));

        // The clients send nothing new from here; what they sent already must be answered through the stop.
        stopLoad.Cancel();
        cluster.Signal(ProcessInfo.SIGTERM);
        var result = await load.WaitAsync(TimeSpan.FromSeconds(60));
        output.WriteLine(result.ToString());

        Assert.Equal(0, result.Failed);
        Assert.True(result.Answered > 500, result.ToString());
        // Each accept thread wakes from poll() on shutdown(); a thread left sleeping would hold the stop up.
        Assert.Equal(0, await cluster.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.True(await ProcessInfo.WaitUntilGoneAsync(cluster.WorkerPids, TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task TwoAcceptThreads_UpgradeUnderLoad_NewSupervisorHoldsBothSocketsAndNoRequestFails()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2, extraArguments: ["--accept-threads", "2"]);
        var port = cluster.Port;
        var inodes = ProcessInfo.ListeningInodes(port);
        Assert.Equal(2, inodes.Count);
        using var stopLoad = new CancellationTokenSource();
        var load = LoadRunner.RunAsync(new Uri($"http://127.0.0.1:{port}/"), keepAliveClients: 8, newConnectionClients: 8, TimeSpan.FromMinutes(5), stopLoad.Token);

        var (exitCode, _, stderr) = await cluster.RunCliAsAsync(null, TimeSpan.FromMinutes(4), "upgrade", "-n", cluster.Name);
        Assert.True(exitCode == 0, stderr);
        Assert.Equal(0, await cluster.WaitForProcessExitAsync(TimeSpan.FromSeconds(90)));
        var newSupervisor = Assert.Single(cluster.UpgradedSupervisorPids);
        // The old supervisor is gone: a socket of the group it had kept back would have closed with it.
        using (var client = Http.NewConnectionClient($"http://127.0.0.1:{port}"))
        {
            for (var i = 0; i < 20; i++)
            {
                await Http.GetPidAsync(client);
            }
        }

        stopLoad.Cancel();
        var result = await load.WaitAsync(TimeSpan.FromSeconds(60));
        output.WriteLine(result.ToString());

        Assert.Equal(0, result.Failed);
        Assert.True(result.Answered > 200, result.ToString());
        Assert.Equal(inodes, ProcessInfo.ListeningInodes(port));
        Assert.All(inodes, inode => Assert.Contains(ProcessInfo.FdTargets(newSupervisor), t => t.EndsWith($"socket:[{inode}]")));
    }
}
