using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

// A second `run` under the name of a cluster that is serving is refused before it starts anything: one error
// line naming the cluster, exit code 2, and the running cluster keeps its workers, its sockets and its clients.
public sealed class ClusterAlreadyRunningTests(ITestOutputHelper output)
{
    private static readonly TimeSpan RefusedExitTimeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Run_NameOfARunningCluster_OneErrorLineExit2AndTheRunningClusterKeepsServing()
    {
        await using var running = await ClusterRun.StartReadyAsync(output, workers: 1);
        var worker = Assert.Single(running.ReadyWorkerPids());

        // The same runtime folder root and, last on the command line, the same name.
        await using var second = ClusterRun.Start(output, ["--workers", "1", "--urls", "http://127.0.0.1:0", "--name", running.Name],
            environment: new Dictionary<string, string> { ["XDG_RUNTIME_DIR"] = running.RuntimeRoot });
        var exitCode = await second.WaitForExitAsync(RefusedExitTimeout);

        Assert.Equal(2, exitCode);
        var error = Assert.Single(second.ErrorLines);
        Assert.Equal($"kestrel-cluster: error: a cluster named '{running.Name}' is already running (channel {running.ChannelPath}); choose another --name.", error);
        Assert.Empty(second.WorkerPids);
        Assert.False(running.HasExited, "the running supervisor exited");
        Assert.Equal(worker, Assert.Single(await running.ListAsync()).Pid);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{running.Port}");
        Assert.Equal(worker, await Http.GetPidAsync(client));
    }
}
