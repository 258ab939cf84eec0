using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace KestrelCluster.Testing.Tests;

/// <summary>A test that fails or is cancelled leaves no worker process behind, checked by pid.</summary>
public sealed partial class CleanupTests(ITestOutputHelper output)
{
    [Fact]
    public async Task DisposeAsync_TestThrowsWithRequestInFlight_NoWorkerLeft()
    {
        var pids = new List<int>();

        var thrown = await Assert.ThrowsAsync<InvalidOperationException>(async () =>
        {
            // What a test method does: `await using` unwinds through the failure.
            await using var cluster = new ClusterApplicationFactory<Program>().WithKillTimeout(TimeSpan.FromSeconds(2)).WithOutput(output.WriteLine);
            using var client = cluster.CreateClient();
            pids.AddRange((await cluster.GetWorkersAsync()).Select(w => w.Pid));
            // A request still running in a worker when the test fails: the drain gives up on it and kills.
            var inFlight = client.GetAsync("/Worker/wait?seconds=60");
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while ((await cluster.GetWorkersAsync()).Sum(w => w.OpenConnections) == 0)
            {
                Assert.False(inFlight.IsCompleted, "the request ended before it reached a worker");
                Assert.True(DateTime.UtcNow < deadline, "no worker reported the request's connection within 30 s");
                await Task.Delay(20);
            }

            throw new InvalidOperationException("the test failed here");
        });

        Assert.Equal("the test failed here", thrown.Message);
        Assert.Equal(2, pids.Count);
        Assert.All(pids, pid => Assert.False(ProcessInfo.IsAlive(pid), $"worker pid {pid} is still alive"));
    }

    [Fact]
    public async Task Dispose_FixtureOfAFailedTest_NoWorkerLeft()
    {
        // xunit disposes a class fixture with Dispose() whatever its tests did.
        var cluster = new ClusterApplicationFactory<Program>().WithWorkers(3).WithOutput(output.WriteLine);
        var pids = (await cluster.GetWorkersAsync()).Select(w => w.Pid).ToList();
        Assert.All(pids, pid => Assert.True(ProcessInfo.IsAlive(pid)));

        cluster.Dispose();

        Assert.Equal(3, pids.Count);
        Assert.All(pids, pid => Assert.False(ProcessInfo.IsAlive(pid), $"worker pid {pid} is still alive"));
    }

    [Fact]
    public async Task StartAsync_CancelledWhileWorkersStart_ThrowsAndNoWorkerLeft()
    {
        var started = new ConcurrentBag<int>();
        using var cancel = new CancellationTokenSource();
        await using var cluster = new ClusterApplicationFactory<Program>().WithOutput(line =>
        {
            output.WriteLine(line);
            if (WorkerStarted().Match(line) is { Success: true } match)
            {
                started.Add(int.Parse(match.Groups[1].Value));
                if (started.Count == 2)
                {
                    // Cancelled mid-way: both processes exist, neither is ready yet.
                    cancel.Cancel();
                }
            }
        });

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cluster.StartAsync(cancel.Token));

        Assert.Equal(2, started.Count);
        Assert.All(started, pid => Assert.False(ProcessInfo.IsAlive(pid), $"worker pid {pid} is still alive"));
        // The factory stays failed rather than half-started.
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cluster.StartAsync());
    }

    [Fact]
    public async Task DisposeAsync_TestCancelledDuringRequest_NoWorkerLeft()
    {
        var pids = new List<int>();
        using var testCancelled = new CancellationTokenSource();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await using var cluster = new ClusterApplicationFactory<Program>().WithKillTimeout(TimeSpan.FromSeconds(2)).WithOutput(output.WriteLine);
            await cluster.StartAsync(testCancelled.Token);
            pids.AddRange((await cluster.GetWorkersAsync(testCancelled.Token)).Select(w => w.Pid));
            using var client = cluster.CreateClient();
            // The runner cancels the test (xunit v3's TestContext.Current.CancellationToken, a timeout, Ctrl+C) mid-request.
            testCancelled.CancelAfter(TimeSpan.FromMilliseconds(500));
            await client.GetAsync("/Worker/wait?seconds=60", testCancelled.Token);
        });

        Assert.Equal(2, pids.Count);
        Assert.All(pids, pid => Assert.False(ProcessInfo.IsAlive(pid), $"worker pid {pid} is still alive"));
    }

    [Fact]
    public async Task StartAsync_WorkersCannotStart_ThrowsWithTheSupervisorsErrorLine()
    {
        var missing = Path.Combine(Path.GetTempPath(), "kct-missing-" + Guid.NewGuid().ToString("N"));
        await using var cluster = new ClusterApplicationFactory<Program>().WithContentRoot(missing).WithOutput(output.WriteLine);

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => cluster.StartAsync());

        Assert.Contains("the cluster stopped (exit code 1)", error.Message);
        Assert.Contains("kestrel-cluster: error: cannot start", error.Message);
        Assert.Throws<InvalidOperationException>(() => cluster.CreateClient());
    }

    [GeneratedRegex(@"Worker \d+ started \(pid (\d+),")]
    private static partial Regex WorkerStarted();
}
