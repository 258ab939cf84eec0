using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

public sealed class WorkerEnvironmentTests(ITestOutputHelper output)
{
    [Fact]
    public async Task RuntimeDefaults_WorkersGetThemUnlessTheUserSetsThem()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2, environment: new Dictionary<string, string> { ["DOTNET_GCNoAffinitize"] = "0" });

        foreach (var pid in cluster.WorkerPids)
        {
            var environment = ProcessInfo.EnvironmentOf(pid);
            Assert.Equal("0", environment.GetValueOrDefault("DOTNET_GCNoAffinitize"));
            Assert.Equal("0", environment.GetValueOrDefault("DOTNET_ThreadPool_UnfairSemaphoreSpinLimit"));
            Assert.Equal(Math.Max(1, Environment.ProcessorCount / 2).ToString("X"), environment.GetValueOrDefault("DOTNET_GCHeapCount"));
            Assert.Equal(Math.Max(1, Environment.ProcessorCount / 2).ToString(), environment.GetValueOrDefault("DOTNET_PROCESSOR_COUNT"));
        }
    }

    // The supervisor runs its own socket completions inline (README "Performance"); app code in a worker must
    // not inherit that, unless the user asked for it in the environment they gave the cluster.
    [Theory]
    [InlineData(null)]
    [InlineData("1")]
    public async Task InlineSocketCompletions_OnlyReachWorkersWhenTheUserSetsThem(string? userValue)
    {
        const string name = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";
        var environment = userValue is null ? null : new Dictionary<string, string> { [name] = userValue };
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2, environment: environment);

        Assert.Equal(2, cluster.WorkerPids.Count);
        foreach (var pid in cluster.WorkerPids)
        {
            Assert.Equal(userValue, ProcessInfo.EnvironmentOf(pid).GetValueOrDefault(name));
        }
    }
}
