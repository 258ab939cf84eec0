using KestrelCluster.Supervisor.Control;
using KestrelCluster.Supervisor.Workers;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Hosting;

// Each rule of the worker lifecycle against the real supervisor loop, with fake workers and a manual clock.
public sealed class LifecycleRulesTests(ITestOutputHelper output)
{
    [Fact]
    public async Task SpawnFails_AfterTheClusterServed_OtherWorkerKeepsServingAndTheSlotRetriesUntilItRecovers()
    {
        await using var cluster = new SupervisorUnderTest(output, workers: 2);
        var first = await cluster.LaunchedAsync(1);
        var second = await cluster.LaunchedAsync(2);
        await cluster.ReadyAsync(first);
        await cluster.ReadyAsync(second);

        // A deploy deleted the working directory: the next spawn of slot 1 fails, again and again.
        cluster.Launcher.FailWith = "No such file or directory";
        second.Exit(128 + 9);
        var rows = await Wait.ForAsync(cluster.ListAsync, r => r.Any(w => w.Id == 1 && w.State == "failing"), TimeSpan.FromSeconds(10));
        for (var i = 0; i < 5; i++)
        {
            await cluster.AdvanceAsync(WorkerSlot.MaxBackoff);
        }

        rows = await cluster.ListAsync();
        Assert.False(cluster.Completion.IsCompleted, cluster.Errors.ToString());
        Assert.Contains(rows, w => w.Id == 0 && w.State == "ready" && w.Generation == 1);
        Assert.Contains(rows, w => w.Id == 1 && w.State == "failing" && w.Pid == 0);
        Assert.False(first.HasExited);
        Assert.Contains(cluster.Log, l => l.Contains("Cannot start worker 1: No such file or directory; the other workers keep serving"));

        // The folder is back: the next retry starts a worker, and once it is ready the slot is healthy again.
        cluster.Launcher.FailWith = null;
        await cluster.AdvanceAsync(WorkerSlot.MaxBackoff);
        var replacement = await cluster.LaunchedAsync(3);
        Assert.Equal(1, replacement.Launch.SlotId);
        await cluster.ReadyAsync(replacement);
        rows = await cluster.ListAsync();
        Assert.All(rows, w => Assert.Equal("ready", w.State));
        Assert.Contains(cluster.Log, l => l.Contains("Worker 1 recovered"));
    }

    [Fact]
    public async Task SpawnFails_BeforeAnyWorkerWasReady_RunEndsWithTheReason()
    {
        await using var cluster = new SupervisorUnderTest(output, workers: 2);
        await cluster.LaunchedAsync(2);

        // Worker 1 crashes before anything was ready, and its restart cannot even be spawned.
        cluster.Launcher.FailWith = "Permission denied";
        cluster.Launcher.Launched[1].Exit(1);
        var exitCode = await WaitForExitOrAdvanceAsync(cluster);

        Assert.Equal(1, exitCode);
        Assert.Contains("cannot start worker", cluster.Errors.ToString());
        Assert.Contains("Permission denied", cluster.Errors.ToString());
    }

    [Fact]
    public async Task CrashLoop_AfterTheClusterServed_NeverGivesUpAndBacksOffDoublingToTheCap()
    {
        await using var cluster = new SupervisorUnderTest(output, workers: 2);
        await cluster.ReadyAsync(await cluster.LaunchedAsync(1));
        await cluster.ReadyAsync(await cluster.LaunchedAsync(2));

        var launched = 2;
        var delays = new List<TimeSpan>();
        for (var crash = 1; crash <= 12; crash++)
        {
            cluster.Launcher.Launched[launched - 1].Exit(3);
            delays.Add(await MeasureRestartDelayAsync(cluster, launched + 1));
            launched++;
        }

        output.WriteLine(string.Join(", ", delays.Select(d => d.TotalMilliseconds)));
        Assert.False(cluster.Completion.IsCompleted, cluster.Errors.ToString());
        Assert.Equal(TimeSpan.Zero, delays[0]);
        Assert.Equal(TimeSpan.FromMilliseconds(250), delays[1]);
        Assert.Equal(TimeSpan.FromMilliseconds(500), delays[2]);
        Assert.Equal(WorkerSlot.MaxBackoff, delays[^1]);
        Assert.All(delays.Zip(delays.Skip(1)), pair => Assert.True(pair.Second >= pair.First));
        var rows = await cluster.ListAsync();
        Assert.Contains(rows, w => w.Id == 0 && w.State == "ready");
        Assert.Contains(rows, w => w.Id == 1 && w.State == "failing");
        Assert.Equal(12, rows.Single(w => w.Id == 1).Restarts);
    }

    [Fact]
    public async Task SingleCrash_RestartsAtOnceAndIsNotShownFailing()
    {
        await using var cluster = new SupervisorUnderTest(output, workers: 2);
        await cluster.ReadyAsync(await cluster.LaunchedAsync(1));
        await cluster.ReadyAsync(await cluster.LaunchedAsync(2));

        cluster.Launcher.Launched[1].Exit(128 + 9);
        var replacement = await cluster.LaunchedAsync(3);

        Assert.Equal(1, replacement.Launch.SlotId);
        Assert.Equal("starting", (await cluster.ListAsync()).Single(w => w.Id == 1).State);
        await cluster.ReadyAsync(replacement);
        Assert.Equal(1, (await cluster.ListAsync()).Single(w => w.Id == 1).Restarts);
    }

    [Fact]
    public async Task CrashLoop_BeforeAnyWorkerWasReady_GivesUpAfterFiveExits()
    {
        await using var cluster = new SupervisorUnderTest(output, workers: 1);
        for (var exits = 1; exits <= WorkerSlot.MaxFailuresBeforeReady; exits++)
        {
            var worker = await LaunchedOrAdvanceAsync(cluster, exits);
            worker.Exit(134);
        }

        var exitCode = await WaitForExitOrAdvanceAsync(cluster);
        Assert.Equal(1, exitCode);
        Assert.Contains("worker 0 exited before it became ready 5 times in a row (last: signal 6 (SIGABRT)); giving up", cluster.Errors.ToString());
    }

    [Fact]
    public async Task ReadyTimeout_TheKilledWorkerBacksOffInsteadOfRestartingAtOnce()
    {
        await using var cluster = new SupervisorUnderTest(output, workers: 2, readyTimeout: TimeSpan.FromSeconds(30));
        await cluster.ReadyAsync(await cluster.LaunchedAsync(1));
        await cluster.ReadyAsync(await cluster.LaunchedAsync(2));
        cluster.Launcher.Launched[1].Exit(3);

        // Its successors hang at start: each is killed at the ready timeout, and the next one must wait longer each time.
        var launched = 3;
        var delays = new List<TimeSpan>();
        for (var i = 0; i < 3; i++)
        {
            var hanging = await LaunchedOrAdvanceAsync(cluster, launched);
            await cluster.AdvanceAsync(TimeSpan.FromSeconds(31));
            Assert.True(hanging.HasExited, "a worker past its ready timeout is killed");
            delays.Add(await MeasureRestartDelayAsync(cluster, launched + 1));
            launched++;
        }

        output.WriteLine(string.Join(", ", delays.Select(d => d.TotalMilliseconds)));
        Assert.All(delays, d => Assert.True(d > TimeSpan.Zero, "restarted at once after a ready-timeout kill"));
        Assert.True(delays[2] > delays[0]);
    }

    [Fact]
    public async Task Scale_FarPastTheCores_StartsAtMostTheLimitAtOnceAndReachesTheTarget()
    {
        await using var cluster = new SupervisorUnderTest(output, workers: 1, maxConcurrentStarts: 2);
        await cluster.ReadyAsync(await cluster.LaunchedAsync(1));

        var scale = cluster.SendAsync(new ControlRequest(ControlCommands.Scale, Workers: 8));
        var maxStarting = 0;
        for (var ready = 1; ready < 8; ready++)
        {
            var rows = await cluster.ListAsync();
            maxStarting = Math.Max(maxStarting, rows.Count(r => r.State == "starting"));
            Assert.Equal(8, rows.Count);
            Assert.True(cluster.Launcher.Launched.Count <= ready + 2, $"{cluster.Launcher.Launched.Count} launched with {ready} ready");
            await cluster.ReadyAsync(await cluster.LaunchedAsync(ready + 1));
        }

        var response = await scale;
        Assert.True(response.Ok, response.Message);
        Assert.Equal(2, maxStarting);
        Assert.Equal(8, cluster.Launcher.Launched.Count);
        Assert.All(await cluster.ListAsync(), r => Assert.Equal("ready", r.State));
    }

    [Fact]
    public async Task Reload_AskedAgainWhileOneRuns_RunsAsOneMorePassAndEveryWorkerEndsOnTheNewestGeneration()
    {
        await using var cluster = new SupervisorUnderTest(output, workers: 2);
        await cluster.ReadyAsync(await cluster.LaunchedAsync(1));
        await cluster.ReadyAsync(await cluster.LaunchedAsync(2));

        var first = cluster.SendAsync(new ControlRequest(ControlCommands.Reload));
        var incoming = await cluster.LaunchedAsync(3);
        var second = cluster.SendAsync(new ControlRequest(ControlCommands.Reload));
        await cluster.ListAsync();
        Assert.Contains(cluster.Log, l => l.Contains("queued"));

        // Every new worker becomes ready as it starts, whichever pass started it.
        for (var launched = 3; launched <= 6; launched++)
        {
            await cluster.ReadyAsync(launched == 3 ? incoming : await cluster.LaunchedAsync(launched));
        }

        var (firstAnswer, secondAnswer) = (await first, await second);
        Assert.True(firstAnswer.Ok && secondAnswer.Ok, firstAnswer.Message + " / " + secondAnswer.Message);
        Assert.Contains("generation 2", firstAnswer.Message);
        Assert.Contains("generation 3", secondAnswer.Message);
        Assert.All(secondAnswer.Workers!.Where(w => w.State != "draining"), w => Assert.Equal(3, w.Generation));
        await cluster.AdvanceAsync(TimeSpan.FromSeconds(31));
        var rows = await Wait.ForAsync(cluster.ListAsync, r => r.All(w => w.State == "ready"), TimeSpan.FromSeconds(10));
        Assert.Equal(2, rows.Count);
        Assert.All(rows, w => Assert.Equal(3, w.Generation));
    }

    [Fact]
    public async Task Drain_WorkerStillRunningAfterTheKillTimeout_IsKilledOnce()
    {
        await using var cluster = new SupervisorUnderTest(output, workers: 2, killTimeout: TimeSpan.FromSeconds(10));
        await cluster.ReadyAsync(await cluster.LaunchedAsync(1));
        var second = await cluster.LaunchedAsync(2);
        await cluster.ReadyAsync(second);

        var scale = cluster.SendAsync(new ControlRequest(ControlCommands.Scale, Workers: 1));
        Assert.Contains(await cluster.ListAsync(), w => w.Id == 1 && w.State == "draining");
        await cluster.AdvanceAsync(TimeSpan.FromSeconds(9));
        Assert.False(second.HasExited, "killed before its kill timeout");
        await cluster.AdvanceAsync(TimeSpan.FromSeconds(2));

        Assert.Equal(137, second.ExitCode);
        Assert.True((await scale).Ok);
        Assert.Single(await cluster.ListAsync());
    }

    [Fact]
    public async Task Reload_OfAPublishedProject_WaitsForThePublishOffTheLoopAndAFailedPublishRefusesIt()
    {
        var publisher = new FakePublisher();
        await using var cluster = new SupervisorUnderTest(output, workers: 2, publisher: publisher);
        var first = await cluster.LaunchedAsync(1);
        var second = await cluster.LaunchedAsync(2);
        await cluster.ReadyAsync(first);
        await cluster.ReadyAsync(second);

        // While the build runs, the loop carries on: it answers `list`, starts no new worker, and restarts a crashed
        // one from its generation's app.
        var refused = cluster.SendAsync(new ControlRequest(ControlCommands.Reload));
        var publish = await publisher.RequestedAsync(1);
        Assert.All(await cluster.ListAsync(), w => Assert.Equal((1, "ready"), (w.Generation, w.State)));
        Assert.Equal(2, cluster.Launcher.Launched.Count);
        second.Exit(3);
        var restarted = await cluster.LaunchedAsync(3);
        Assert.Equal((1, FakePublisher.FirstFolder), (restarted.Launch.Generation, restarted.Launch.Command!.WorkingDirectory));
        await cluster.ReadyAsync(restarted);

        publish.SetResult(PublishResult.Failed("Program.cs(11,57): error CS1002: ; expected"));
        var answer = await refused;
        Assert.False(answer.Ok);
        Assert.Contains("reload refused: the build of /src/Shop/Shop.csproj failed: Program.cs(11,57): error CS1002: ; expected", answer.Message);
        Assert.Contains("the workers of generation 1 keep serving", answer.Message);
        Assert.Equal(3, cluster.Launcher.Launched.Count);
        Assert.False(first.HasExited || restarted.HasExited);
        Assert.All(await cluster.ListAsync(), w => Assert.Equal((1, "ready"), (w.Generation, w.State)));

        // Fixed: the next reload's pass starts once its publish is done, and its workers run the new folder.
        var reload = cluster.SendAsync(new ControlRequest(ControlCommands.Reload));
        (await publisher.RequestedAsync(2)).SetResult(new PublishResult(FakePublisher.App("/published/2"), null));
        for (var launched = 4; launched <= 5; launched++)
        {
            var incoming = await cluster.LaunchedAsync(launched);
            Assert.Equal((2, "/published/2"), (incoming.Launch.Generation, incoming.Launch.Command!.WorkingDirectory));
            await cluster.ReadyAsync(incoming);
        }

        Assert.True((await reload).Ok);
        // The old generation's folder stays while its workers drain, and goes once they have exited.
        Assert.Empty(publisher.Deleted);
        await cluster.AdvanceAsync(TimeSpan.FromSeconds(31));
        Assert.True(first.HasExited && restarted.HasExited);
        await Wait.UntilAsync(() => !publisher.Deleted.IsEmpty, TimeSpan.FromSeconds(10));
        Assert.Equal([FakePublisher.FirstFolder], publisher.Deleted);
    }

    // After a failure of the newest worker: how long until the launcher is asked for worker number `next`.
    private static async Task<TimeSpan> MeasureRestartDelayAsync(SupervisorUnderTest cluster, int next)
    {
        var step = TimeSpan.FromMilliseconds(250);
        var waited = TimeSpan.Zero;
        await cluster.ListAsync();
        while (cluster.Launcher.Launched.Count < next)
        {
            Assert.True(waited <= WorkerSlot.MaxBackoff, $"no restart within {waited}");
            await cluster.AdvanceAsync(step);
            waited += step;
        }

        return waited;
    }

    private static async Task<FakeWorker> LaunchedOrAdvanceAsync(SupervisorUnderTest cluster, int count)
    {
        for (var i = 0; i < 200 && cluster.Launcher.Launched.Count < count; i++)
        {
            await cluster.AdvanceAsync(TimeSpan.FromMilliseconds(250));
        }

        return await cluster.LaunchedAsync(count);
    }

    private static async Task<int> WaitForExitOrAdvanceAsync(SupervisorUnderTest cluster)
    {
        for (var i = 0; i < 200 && !cluster.Completion.IsCompleted; i++)
        {
            cluster.Clock.Advance(TimeSpan.FromSeconds(1));
            await Task.WhenAny(cluster.Completion, Task.Delay(20));
        }

        return await cluster.Completion.WaitAsync(TimeSpan.FromSeconds(10));
    }
}
