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
            var environment = File.ReadAllText($"/proc/{pid}/environ").Split('\0');
            Assert.Contains("DOTNET_GCNoAffinitize=0", environment);
            Assert.Contains("DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0", environment);
            Assert.Contains("DOTNET_GCHeapCount=" + Math.Max(1, Environment.ProcessorCount / 2).ToString("X"), environment);
        }
    }
}
