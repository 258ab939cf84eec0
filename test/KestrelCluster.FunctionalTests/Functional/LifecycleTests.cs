using System.Net;
using System.Text.RegularExpressions;
using KestrelCluster.Load;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

public sealed class LifecycleTests(ITestOutputHelper output)
{
    private static readonly TimeSpan CliTimeout = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task Reload_CommandAndSighupUnderLoad_ReplaceEveryWorkerWithZeroFailedRequests()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2);
        var firstPids = cluster.WorkerPids.ToList();
        var load = LoadRunner.RunAsync(new Uri($"http://127.0.0.1:{cluster.Port}/"), keepAliveClients: 16, newConnectionClients: 16, TimeSpan.FromSeconds(20));

        var (exitCode, stdout, stderr) = await cluster.RunCliAsync(CliTimeout, "reload");
        Assert.True(exitCode == 0, stderr);
        Assert.Contains("generation 2", stdout);
        // The first generation may still be listed for a moment, draining: reload answers once the new one is ready.
        var secondPids = (await cluster.ListAsync()).Where(w => w.Generation == 2).Select(w => w.Pid).ToList();
        Assert.Equal(2, secondPids.Count);

        cluster.Signal(ProcessInfo.SIGHUP);
        await cluster.WaitForLineAsync(new Regex("Reload complete: 2 workers on generation 3"), CliTimeout);
        var result = await load.WaitAsync(TimeSpan.FromSeconds(90));
        output.WriteLine(result.ToString());

        var workers = await cluster.ListAsync();
        Assert.Equal(2, workers.Count);
        Assert.All(workers, w => Assert.Equal(3, w.Generation));
        Assert.Empty(workers.Select(w => w.Pid).Intersect(firstPids.Concat(secondPids)));
        Assert.Empty(secondPids.Intersect(firstPids));
        Assert.Equal(0, result.Failed);
        Assert.True(result.Answered > 1000, result.ToString());
    }

    [Fact]
    public async Task Reload_NewGenerationCrashesAtStart_OldWorkersKeepServingAndCommandFails()
    {
        using var appFolder = CopyOfSampleSettings();
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2, workingDirectory: appFolder.Path);
        var oldPids = cluster.WorkerPids.ToList();
        var load = LoadRunner.RunAsync(new Uri($"http://127.0.0.1:{cluster.Port}/"), keepAliveClients: 8, newConnectionClients: 8, TimeSpan.FromSeconds(6));

        // A deploy with broken configuration: every new worker fails while building its host.
        await File.WriteAllTextAsync(Path.Combine(appFolder.Path, "appsettings.json"), "{ this is not json");
        var (exitCode, _, stderr) = await cluster.RunCliAsync(CliTimeout, "reload");
        var result = await load.WaitAsync(TimeSpan.FromSeconds(60));
        output.WriteLine(result.ToString());

        Assert.NotEqual(0, exitCode);
        Assert.Matches("kestrel-cluster: error: reload failed: worker 0 of generation 2 exited before it became ready", stderr);
        Assert.Equal(0, result.Failed);
        var workers = await cluster.ListAsync();
        Assert.Equal(oldPids.Order(), workers.Select(w => w.Pid).Order());
        Assert.All(workers, w => Assert.Equal(1, w.Generation));
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");
        Assert.Contains(await Http.GetPidAsync(client), oldPids);
    }

    [Fact]
    public async Task Sigterm_DuringReload_ReloadCommandFailsWithTheReasonAndEverythingStops()
    {
        using var folder = new TemporaryFolder();
        var slow = Path.Combine(folder.Path, "slow");
        // Workers started once the marker file exists take 60 s to start: the reload is still waiting when the stop comes.
        await using var cluster = ClusterRun.Start(output,
            ["--workers", "2", "--urls", "http://127.0.0.1:0", "--", "sh", "-c", $"if [ -e '{slow}' ]; then sleep 60; fi; exec '{TestPaths.Dotnet}' '{TestPaths.SampleDll}'"],
            appendSampleCommand: false);
        await cluster.WaitForLineAsync(new Regex("All 2 workers ready"), ClusterRun.StartTimeout);
        await File.WriteAllTextAsync(slow, "");

        var reload = cluster.RunCliAsync(CliTimeout, "reload");
        await cluster.WaitForLineAsync(new Regex(@"Worker 0 started \(pid \d+, generation 2\)"), TimeSpan.FromSeconds(30));
        cluster.Signal(ProcessInfo.SIGTERM);
        var (exitCode, _, stderr) = await reload.WaitAsync(TimeSpan.FromSeconds(60));

        Assert.NotEqual(0, exitCode);
        Assert.Contains("the cluster is stopping (SIGTERM)", stderr);
        Assert.Equal(0, await cluster.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.True(await ProcessInfo.WaitUntilGoneAsync(cluster.WorkerPids, TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Sigterm_WhileSlowRequestInFlight_RequestCompletesAndSupervisorExitsZero()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");
        var check = client.GetAsync("/check");
        // The request is in the worker's hands once a worker holds an open connection.
        await Wait.UntilAsync(async () => (await cluster.ListAsync()).Any(w => w.OpenConnections > 0), TimeSpan.FromSeconds(10));

        cluster.Signal(ProcessInfo.SIGTERM);

        using var response = await check.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("Checked by ", await response.Content.ReadAsStringAsync());
        Assert.Equal(0, await cluster.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.True(await ProcessInfo.WaitUntilGoneAsync(cluster.WorkerPids, TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task AllWorkersKilled_RequestsSentMeanwhile_AreAnsweredOnceWorkersAreBack()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2);
        var oldPids = cluster.WorkerPids.ToList();
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");

        foreach (var pid in oldPids)
        {
            ProcessInfo.Signal(pid, ProcessInfo.SIGKILL);
        }

        Assert.True(await ProcessInfo.WaitUntilGoneAsync(oldPids, TimeSpan.FromSeconds(5)));
        var answers = await Task.WhenAll(Enumerable.Range(0, 10).Select(_ => Http.GetPidAsync(client))).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(10, answers.Length);
        Assert.Empty(answers.Intersect(oldPids));
    }

    [Fact]
    public async Task WorkerOutput_ShowsHostingEnvironmentAndContentRoot_AsTheAppAlone()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 1);
        var worker = Assert.Single(cluster.WorkerPids);

        await cluster.WaitForLineAsync(new Regex($@"^\[worker 0 pid {worker}\] +Hosting environment: Production$"), TimeSpan.FromSeconds(10));
        await cluster.WaitForLineAsync(new Regex($@"^\[worker 0 pid {worker}\] +Content root path: {Regex.Escape(TestPaths.SampleDirectory)}/?$"), TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task CrashLoop_AppFailsAtStartup_EndsWithClearErrorAndExitCode()
    {
        using var appFolder = CopyOfSampleSettings();
        await File.WriteAllTextAsync(Path.Combine(appFolder.Path, "appsettings.json"), "{ broken");
        await using var cluster = ClusterRun.Start(output, ["--workers", "2", "--urls", "http://127.0.0.1:0"], workingDirectory: appFolder.Path);

        var exitCode = await cluster.WaitForExitAsync(TimeSpan.FromSeconds(120));

        Assert.Equal(1, exitCode);
        Assert.Contains(cluster.Lines, l => Regex.IsMatch(l, @"^kestrel-cluster: error: worker \d exited before it became ready 5 times in a row \(last: .+\); giving up"));
        Assert.True(await ProcessInfo.WaitUntilGoneAsync(cluster.WorkerPids, TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task Scale_UpToFourThenDownToOneUnderLoad_ZeroFailedRequests()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2);
        var load = LoadRunner.RunAsync(new Uri($"http://127.0.0.1:{cluster.Port}/"), keepAliveClients: 8, newConnectionClients: 8, TimeSpan.FromSeconds(12));

        var up = await cluster.RunCliAsync(CliTimeout, "scale", "4");
        Assert.True(up.ExitCode == 0, up.Stderr);
        var four = await cluster.ListAsync();
        Assert.Equal([0, 1, 2, 3], four.Select(w => w.Id).Order());
        Assert.All(four, w => Assert.Equal("ready", w.State));

        var down = await cluster.RunCliAsync(CliTimeout, "scale", "1");
        Assert.True(down.ExitCode == 0, down.Stderr);
        var one = await cluster.ListAsync();
        var result = await load.WaitAsync(TimeSpan.FromSeconds(60));
        output.WriteLine(result.ToString());

        Assert.Equal(0, Assert.Single(one).Id);
        Assert.Equal("ready", one[0].State);
        Assert.Equal(0, result.Failed);
        Assert.True(await ProcessInfo.WaitUntilGoneAsync(four.Where(w => w.Id != 0).Select(w => w.Pid), TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task ControlSocket_PeerOfAnotherUid_IsRefused()
    {
        Assert.True(Environment.UserName == "root", "this test switches to another uid with setpriv and must run as root (CI does)");
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 1);
        // Open the folders and the socket to everyone, so only the supervisor's SO_PEERCRED check stands in the way.
        var folder = Path.GetDirectoryName(cluster.ChannelPath)!;
        foreach (var path in new[] { cluster.RuntimeRoot, Path.GetDirectoryName(folder)!, folder })
        {
            File.SetUnixFileMode(path, (UnixFileMode)0b111_101_101);
        }

        File.SetUnixFileMode(Path.Combine(folder, "control.sock"), (UnixFileMode)0b110_110_110);

        var (exitCode, stdout, stderr) = await ExternalCommand.RunAsync("setpriv",
            ["--reuid=65534", "--regid=65534", "--clear-groups", TestPaths.Dotnet, TestPaths.SupervisorDll, "list", "-n", cluster.Name], TimeSpan.FromSeconds(60),
            new Dictionary<string, string?> { ["XDG_RUNTIME_DIR"] = cluster.RuntimeRoot, ["DOTNET_CLI_HOME"] = "/tmp", ["HOME"] = "/tmp" });
        output.WriteLine($"as uid 65534: exit {exitCode}\n{stdout}{stderr}");

        Assert.NotEqual(0, exitCode);
        Assert.DoesNotContain("ready", stdout);
        await cluster.WaitForLineAsync(new Regex(@"Refused a channel peer \(pid \d+, uid 65534\): uid 65534 may not control this cluster"), TimeSpan.FromSeconds(10));
        Assert.Single(await cluster.ListAsync());
    }

    // A working folder for the app (its content root) whose settings a test may break.
    private static TemporaryFolder CopyOfSampleSettings()
    {
        var folder = new TemporaryFolder();
        File.Copy(Path.Combine(TestPaths.SampleDirectory, "appsettings.json"), Path.Combine(folder.Path, "appsettings.json"));
        return folder;
    }
}
