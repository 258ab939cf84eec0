using System.Net;
using System.Text.RegularExpressions;
using KestrelCluster.Load;
using KestrelCluster.Supervisor.Distribution;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Reliability;

// Workers die or freeze under load; the cluster keeps serving and loses nothing it accepted except what a
// dying worker had in its own hands. The 60-second version is eng/chaos.sh.
public sealed partial class ChaosTests(ITestOutputHelper output)
{
    private const int KeepAliveClients = 8;
    private const int NewConnectionClients = 8;

    [Fact]
    public async Task RandomWorkerKilledEveryTwoSeconds_UnderLoad_OnlyRequestsInFlightOnAKilledWorkerFail()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2);
        var duration = TimeSpan.FromSeconds(10);
        var load = LoadRunner.RunAsync(new Uri($"http://127.0.0.1:{cluster.Port}/"), KeepAliveClients, NewConnectionClients, duration);
        var (kills, skipped) = await Chaos.KillWorkersAsync(cluster.ReadyWorkerPids, pid => ProcessInfo.Signal(pid, ProcessInfo.SIGKILL), TimeSpan.FromSeconds(2), duration);
        var report = Chaos.Account(await load.WaitAsync(TimeSpan.FromSeconds(90)), kills, skipped);
        var redispatched = cluster.Lines.Select(l => RedispatchedPattern().Match(l)).Where(m => m.Success).Sum(m => int.Parse(m.Groups[1].Value));
        output.WriteLine($"{report}\nunacknowledged connections handed to other workers: {redispatched}");

        Assert.True(kills.Count >= 2, $"only {kills.Count} kills happened");
        Assert.Empty(report.Unexplained);
        // A client has one request in flight at a time: a kill can cost each client at most that one.
        Assert.InRange(report.MaxInFlightPerKill, 0, KeepAliveClients + NewConnectionClients);
        Assert.True(report.Load.Answered > 500, report.ToString());
        Assert.All(kills, k => Assert.False(ProcessInfo.IsAlive(k.Pid)));
        // Every slot came back.
        await Wait.UntilAsync(() => cluster.ReadyWorkerPids().Count == 2, ClusterRun.StartTimeout);
    }

    [Fact]
    public async Task WorkerFrozenBySigstop_SupervisorKeepsServingThroughTheOther()
    {
        // Heartbeat detection off: this is about the dispatcher not waiting for a worker, however long it is frozen.
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2, extraArguments: ["--heartbeat-timeout", "0"]);
        var frozen = cluster.WorkerPids[0];
        var survivor = cluster.WorkerPids[1];
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");
        ProcessInfo.Signal(frozen, ProcessInfo.SIGSTOP);
        try
        {
            // The frozen worker reads nothing from its channel: once its window (32) is full, every new connection
            // goes to the survivor, and neither the accept loop nor the control socket waits for the frozen one.
            const int Requests = 200;
            var requests = Enumerable.Range(0, Requests).Select(_ => Http.GetPidAsync(client)).ToList();
            await Wait.UntilAsync(() => requests.Count(r => r.IsCompletedSuccessfully) >= Requests - Dispatcher.DefaultWindow, TimeSpan.FromSeconds(60));
            var list = await cluster.ListAsync();

            Assert.All(requests.Where(r => r.IsCompleted), r => Assert.Equal(survivor, r.Result));
            Assert.Equal(2, list.Count);
            var stuck = requests.Count(r => !r.IsCompleted);
            output.WriteLine($"{Requests - stuck} answered by the survivor while {stuck} wait on the frozen worker");
            Assert.InRange(stuck, 1, Dispatcher.DefaultWindow);

            // Thawed, the frozen worker serves what it was given: nothing was lost.
            ProcessInfo.Signal(frozen, ProcessInfo.SIGCONT);
            var pids = await Task.WhenAll(requests).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(stuck, pids.Count(p => p == frozen));
        }
        finally
        {
            ProcessInfo.Signal(frozen, ProcessInfo.SIGCONT);
        }
    }

    [Fact]
    public async Task WorkerFrozenBySigstop_DetectedByHeartbeatReplacedAndEveryRequestAnswered()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2, extraArguments: ["--heartbeat-timeout", "3"]);
        var frozen = cluster.WorkerPids[0];
        var survivor = cluster.WorkerPids[1];
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");
        ProcessInfo.Signal(frozen, ProcessInfo.SIGSTOP);
        try
        {
            // Requests keep coming while it is frozen; those it was handed (unacknowledged) must not be lost.
            var requests = Enumerable.Range(0, 100).Select(_ => Http.GetPidAsync(client)).ToList();
            await cluster.WaitForLineAsync(new Regex($@"Worker 0 \(pid {frozen}\) sent no heartbeat for 3 s"), TimeSpan.FromSeconds(30));
            var replaced = await cluster.WaitForLineAsync(new Regex($@"Worker 0 ready \(pid (?!{frozen}\b)\d+"), ClusterRun.StartTimeout);
            var pids = await Task.WhenAll(requests).WaitAsync(TimeSpan.FromSeconds(60));
            var redispatched = cluster.Lines.Select(l => RedispatchedPattern().Match(l)).Where(m => m.Success).Sum(m => int.Parse(m.Groups[1].Value));
            output.WriteLine($"{replaced}\n100 requests answered: {pids.Count(p => p == survivor)} by the survivor, {pids.Count(p => p != survivor)} by the replacement; {redispatched} handed on from the frozen worker");

            Assert.DoesNotContain(frozen, pids);
            Assert.True(await ProcessInfo.WaitUntilGoneAsync([frozen], TimeSpan.FromSeconds(10)), "the frozen worker should have been killed");
            Assert.Equal(2, cluster.ReadyWorkerPids().Count);
        }
        finally
        {
            ProcessInfo.Signal(frozen, ProcessInfo.SIGCONT);
        }
    }


    [GeneratedRegex(@"left (\d+) unacknowledged connections")]
    private static partial Regex RedispatchedPattern();
}
