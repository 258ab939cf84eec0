using KestrelCluster.Load;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Infrastructure;

/// <summary>Whole scenarios several test classes run, each with its own cluster options.</summary>
internal static class ClusterScenarios
{
    /// <summary>
    /// A rolling reload of 2 workers under 16 keep-alive and 16 new-connection clients that do not retry: every worker
    /// is replaced by one of generation 2 and no request fails.
    /// </summary>
    public static async Task ReloadUnderLoad_ReplacesEveryWorkerWithZeroFailedRequestsAsync(ITestOutputHelper output, params string[] extraArguments)
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2, extraArguments: extraArguments);
        var firstPids = cluster.WorkerPids.ToList();
        var load = LoadRunner.RunAsync(new Uri($"http://127.0.0.1:{cluster.Port}/"), keepAliveClients: 16, newConnectionClients: 16, TimeSpan.FromSeconds(15));

        var (exitCode, _, stderr) = await cluster.RunCliAsync(TimeSpan.FromSeconds(120), "reload");
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
}
