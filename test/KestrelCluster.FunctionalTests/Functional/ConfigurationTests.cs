using System.Text.RegularExpressions;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

public sealed class ConfigurationTests(ITestOutputHelper output)
{
    [Fact]
    public async Task SettingsFile_NextToTheApp_SetsWorkersAndCommandLineStillWins()
    {
        using var folder = new TemporaryFolder();
        File.Copy(Path.Combine(TestPaths.SampleDirectory, "appsettings.json"), Path.Combine(folder.Path, "appsettings.json"));
        File.WriteAllText(Path.Combine(folder.Path, "kestrel-cluster.json"), """{ "workers": 3, "urls": "http://127.0.0.1:0", "killTimeout": 5 }""");

        await using (var fromFile = ClusterRun.Start(output, [], workingDirectory: folder.Path))
        {
            await fromFile.WaitForLineAsync(new Regex("All 3 workers ready"), ClusterRun.StartTimeout);
            Assert.Equal(3, (await fromFile.ListAsync()).Count);
        }

        await using var overridden = ClusterRun.Start(output, ["--workers", "1"], workingDirectory: folder.Path);
        await overridden.WaitForLineAsync(new Regex("All 1 workers ready"), ClusterRun.StartTimeout);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{overridden.Port}");
        Assert.Contains(await Http.GetPidAsync(client), overridden.WorkerPids);
    }

    [Fact]
    public async Task EnvironmentVariable_BadValue_OneErrorLineNamingItAndNothingStarts()
    {
        await using var cluster = ClusterRun.Start(output, ["--workers", "1"], new Dictionary<string, string> { ["KESTREL_CLUSTER_KILL_TIMEOUT"] = "-1" });

        var exitCode = await cluster.WaitForExitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(2, exitCode);
        var error = Assert.Single(cluster.Lines, l => l.StartsWith("kestrel-cluster: error:"));
        Assert.Contains("KESTREL_CLUSTER_KILL_TIMEOUT", error);
        Assert.Empty(cluster.WorkerPids);
    }
}
