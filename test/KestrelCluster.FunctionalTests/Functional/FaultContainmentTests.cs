using System.Net;
using System.Text.RegularExpressions;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

// Local faults of one slot (a failed spawn, a crash loop, too many workers at once, two reloads at once) leave
// the healthy workers serving. Real supervisor, real workers.
public sealed class FaultContainmentTests(ITestOutputHelper output)
{
    private static readonly TimeSpan CliTimeout = TimeSpan.FromSeconds(120);
    private static readonly TimeSpan RecoveryTimeout = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task SpawnFails_WorkingDirectoryGoneAfterServing_OtherWorkerKeepsServingAndSlotRecovers()
    {
        using var parent = new TemporaryFolder();
        var release = Path.Combine(parent.Path, "release");
        Directory.CreateDirectory(release);
        File.Copy(Path.Combine(TestPaths.SampleDirectory, "appsettings.json"), Path.Combine(release, "appsettings.json"));
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2, workingDirectory: release);
        var before = await cluster.ListAsync();
        var survivor = before.Single(w => w.Id == 0).Pid;

        // A deploy removed the folder the workers run from; then worker 1 dies. Its restart cannot be spawned.
        Directory.Move(release, release + ".old");
        ProcessInfo.Signal(before.Single(w => w.Id == 1).Pid, ProcessInfo.SIGKILL);
        await cluster.WaitForLineAsync(new Regex("Cannot start worker 1: .+; the other workers keep serving"), TimeSpan.FromSeconds(30));

        var failing = await Wait.ForAsync(cluster.ListAsync, w => w.Any(r => r.Id == 1 && r.State == "failing"), TimeSpan.FromSeconds(30));
        Assert.False(cluster.HasExited, cluster.Output);
        Assert.Contains(failing, w => w.Id == 0 && w.Pid == survivor && w.State == "ready");
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(survivor, await Http.GetPidAsync(client));
        }

        // The folder is back: a retry succeeds and both workers serve again.
        Directory.Move(release + ".old", release);
        var recovered = await Wait.ForAsync(cluster.ListAsync, w => w.Count == 2 && w.All(r => r.State == "ready"), RecoveryTimeout);
        Assert.Equal(survivor, recovered.Single(w => w.Id == 0).Pid);
        await cluster.WaitForLineAsync(new Regex("Worker 1 recovered"), TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task CrashLoop_AfterServing_NeverStopsTheClusterAndIsShownFailingUntilItRecovers()
    {
        using var folder = new TemporaryFolder();
        var broken = Path.Combine(folder.Path, "broken");
        // Once the marker exists, every new worker exits at once: a bad deploy on disk.
        await using var cluster = ClusterRun.Start(output,
            ["--workers", "2", "--urls", "http://127.0.0.1:0", "--admin-urls", "http://127.0.0.1:0", "--", "sh", "-c", $"if [ -e '{broken}' ]; then echo bad deploy; exit 3; fi; exec '{TestPaths.Dotnet}' '{TestPaths.SampleDll}'"],
            appendSampleCommand: false);
        await cluster.WaitForLineAsync(new Regex("All 2 workers ready"), ClusterRun.StartTimeout);
        using var admin = await cluster.AdminClientAsync();
        var survivor = (await cluster.ListAsync()).Single(w => w.Id == 0).Pid;
        await File.WriteAllTextAsync(broken, "");
        ProcessInfo.Signal((await cluster.ListAsync()).Single(w => w.Id == 1).Pid, ProcessInfo.SIGKILL);

        // More exits before ready than the give-up rule allows at first start: the cluster has served, so it keeps going.
        var looping = await Wait.ForAsync(cluster.ListAsync, w => w.Single(r => r.Id == 1).Restarts >= 7, TimeSpan.FromSeconds(60));
        Assert.False(cluster.HasExited, cluster.Output);
        Assert.Equal("failing", looping.Single(w => w.Id == 1).State);
        Assert.Contains(looping, w => w.Id == 0 && w.Pid == survivor && w.State == "ready");
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");
        Assert.Equal(survivor, await Http.GetPidAsync(client));
        var readyz = await admin.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.OK, readyz.StatusCode);
        Assert.StartsWith("ready; failing: worker 1 (exit code 3)", await readyz.Content.ReadAsStringAsync());
        Assert.Contains("kestrel_cluster_worker_count{kestrel_cluster_worker_state=\"failing\"} 1", await admin.GetStringAsync("/metrics"));
        Assert.Contains(cluster.Lines, l => l.Contains("Worker 1 is failing"));

        File.Delete(broken);
        var recovered = await Wait.ForAsync(cluster.ListAsync, w => w.Count == 2 && w.All(r => r.State == "ready"), RecoveryTimeout);
        Assert.Equal(survivor, recovered.Single(w => w.Id == 0).Pid);
        await Wait.UntilAsync(async () => await admin.GetStringAsync("/readyz") == "ready", TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Scale_FarPastTheCores_StartsAtMostOnePerCoreAtOnceAndReachesTheTarget()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 1);
        var target = Environment.ProcessorCount + 3;
        var scale = cluster.RunCliAsync(CliTimeout, "scale", target.ToString());

        // Polled through the CLI, which takes a while on a busy machine: the pending rows may pass unseen (the unit
        // tests check them); more workers starting than cores would not, since each takes a second or more to start.
        var maxStarting = 0;
        while (!scale.IsCompleted)
        {
            var rows = await cluster.ListAsync();
            maxStarting = Math.Max(maxStarting, rows.Count(w => w.State == "starting"));
            await Task.WhenAny(scale, Task.Delay(50));
        }

        var (exitCode, stdout, stderr) = await scale;
        output.WriteLine($"at most {maxStarting} starting at once");
        Assert.True(exitCode == 0, stderr);
        Assert.Contains($"{target} workers ready", stdout);
        Assert.InRange(maxStarting, 1, Environment.ProcessorCount);
        var workers = await cluster.ListAsync();
        Assert.Equal(target, workers.Count);
        Assert.All(workers, w => Assert.Equal("ready", w.State));
    }

    [Fact]
    public async Task Reload_SecondCommandDuringAReload_RunsAsOneMorePassAndBothEndOnTheirOwnGeneration()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2);

        var first = cluster.RunCliAsync(CliTimeout, "reload");
        await cluster.WaitForLineAsync(new Regex(@"Reloading \(control socket\): generation 1 → 2"), TimeSpan.FromSeconds(30));
        var second = cluster.RunCliAsync(CliTimeout, "reload");
        var (firstResult, secondResult) = (await first, await second);

        Assert.True(firstResult.ExitCode == 0, firstResult.Stderr);
        Assert.True(secondResult.ExitCode == 0, secondResult.Stderr);
        Assert.Contains("generation 2", firstResult.Stdout);
        Assert.Contains("generation 3", secondResult.Stdout);
        var workers = await Wait.ForAsync(cluster.ListAsync, w => w.All(r => r.State == "ready"), TimeSpan.FromSeconds(60));
        Assert.Equal(2, workers.Count);
        Assert.All(workers, w => Assert.Equal(3, w.Generation));
        Assert.Contains(cluster.Lines, l => l.Contains("queued: it runs as one more pass once the reload to generation 2 has finished"));
    }
}
