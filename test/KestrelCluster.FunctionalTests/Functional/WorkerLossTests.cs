using System.Net;
using System.Text.RegularExpressions;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

public sealed class WorkerLossTests(ITestOutputHelper output)
{
    [Fact]
    public async Task WorkerKilled_WithUnacknowledgedConnections_AnotherWorkerServesEveryOne()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2);
        var victim = cluster.WorkerPids[0];
        var survivor = cluster.WorkerPids[1];
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");

        // A frozen worker still receives its share of connections but acknowledges none of them.
        ProcessInfo.Signal(victim, ProcessInfo.SIGSTOP);
        const int Requests = 20;
        var requests = Enumerable.Range(0, Requests).Select(_ => Http.GetPidAsync(client)).ToList();

        // Round-robin alternates: the survivor answers its half while the other half waits on the frozen worker.
        await Wait.UntilAsync(() => requests.Count(r => r.IsCompletedSuccessfully) >= Requests / 2, TimeSpan.FromSeconds(30));
        Assert.All(requests.Where(r => r.IsCompleted), r => Assert.Equal(survivor, r.Result));
        Assert.True(requests.Count(r => !r.IsCompleted) > 0, "some connections should be held by the frozen worker");

        ProcessInfo.Signal(victim, ProcessInfo.SIGKILL);
        var pids = await Task.WhenAll(requests).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(Requests, pids.Length);
        Assert.DoesNotContain(victim, pids);
        var redispatched = await cluster.WaitForLineAsync(new Regex(@"left (\d+) unacknowledged connections"), TimeSpan.FromSeconds(10));
        Assert.Matches(@"left (1\d|[1-9]) unacknowledged", redispatched);
    }

    [Fact]
    public async Task WorkerKilled_UnderLoad_OnlyRequestsInFlightOnItFail()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2);
        var victim = cluster.WorkerPids[0];
        const int Clients = 8;
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(4));
        var killed = false;
        var answered = 0;
        var failed = 0;

        async Task ClientLoop()
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    using var response = await client.GetAsync("/", CancellationToken.None);
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        Interlocked.Increment(ref answered);
                    }
                    else
                    {
                        Interlocked.Increment(ref failed);
                    }
                }
                catch (HttpRequestException)
                {
                    Interlocked.Increment(ref failed);
                }

                if (!killed && Volatile.Read(ref answered) >= 200)
                {
                    killed = true;
                    ProcessInfo.Signal(victim, ProcessInfo.SIGKILL);
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, Clients).Select(_ => Task.Run(ClientLoop))).WaitAsync(TimeSpan.FromSeconds(60));

        output.WriteLine($"answered {answered}, failed {failed}");
        Assert.True(killed);
        Assert.False(ProcessInfo.IsAlive(victim));
        // A request can only fail if it was on the killed worker at that moment: at most one per client.
        Assert.InRange(failed, 0, Clients);
        Assert.True(answered > 200);
        await cluster.WaitForLineAsync(new Regex(@"Worker 0 started \(pid (?!" + victim + @"\b)\d+"), TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task SupervisorKilled_WithSigkill_WorkersAreGoneWithinFiveSeconds()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2);
        var workers = cluster.WorkerPids;
        Assert.Equal(2, workers.Count);
        Assert.All(workers, pid => Assert.True(ProcessInfo.IsAlive(pid)));

        cluster.Signal(ProcessInfo.SIGKILL);

        Assert.True(await ProcessInfo.WaitUntilGoneAsync(workers, TimeSpan.FromSeconds(5)),
            $"still alive 5 s after the supervisor was killed: {string.Join(", ", workers.Where(ProcessInfo.IsAlive))}");
    }
}
