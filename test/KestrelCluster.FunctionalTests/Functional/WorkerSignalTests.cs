using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

public sealed class WorkerSignalTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Sighup_ToAWorker_WorkerKeepsServingWithTheSamePid()
    {
        // A terminal hangup reaches the whole process group; the supervisor alone decides what it means (reload).
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 1);
        var worker = Assert.Single(cluster.WorkerPids);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");
        Assert.Equal(worker, await Http.GetPidAsync(client));

        ProcessInfo.Signal(worker, ProcessInfo.SIGHUP);

        // A worker that dies of it is gone within this time (the runtime's default action is to terminate).
        await Assert.ThrowsAsync<TimeoutException>(() => Wait.UntilAsync(() => !ProcessInfo.IsAlive(worker), TimeSpan.FromSeconds(3)));
        Assert.Equal(worker, await Http.GetPidAsync(client));
        Assert.Equal([worker], cluster.WorkerPids);
    }
}
