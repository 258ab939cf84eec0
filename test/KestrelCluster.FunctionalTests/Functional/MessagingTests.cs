using System.Net.Http.Json;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

public sealed class MessagingTests(ITestOutputHelper output)
{
    private sealed record WorkerInbox(int Pid, string[] Received);

    [Fact]
    public async Task Broadcast_FromOneWorker_ReachesEveryOtherWorkerAndNotItself()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 3);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");

        using var response = await client.PostAsync("/cache/invalidate/greeting", null);
        var answer = await response.Content.ReadAsStringAsync();
        var sender = int.Parse(answer.Split(' ')[3]);
        var senderId = (await cluster.ListAsync()).Single(w => w.Pid == sender).Id;
        var expected = $"worker {senderId}: {{\"key\":\"greeting\"}}";

        var seen = await ReceivedByEveryWorkerAsync(cluster, client, r => r.Pid == sender || r.Received.Contains(expected));

        Assert.DoesNotContain(expected, seen[sender]);
        Assert.All(seen.Where(s => s.Key != sender), s => Assert.Contains(expected, s.Value));
    }

    [Fact]
    public async Task SendCommand_AllAndOneWorker_DeliverToExactlyThoseWorkers()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");
        var workers = await cluster.ListAsync();

        var all = await cluster.RunCliAsync(TimeSpan.FromSeconds(30), "send", "all", """{"key":"*"}""");
        var one = await cluster.RunCliAsync(TimeSpan.FromSeconds(30), "send", "1", """{"key":"only-one"}""");
        var missing = await cluster.RunCliAsync(TimeSpan.FromSeconds(30), "send", "9", "{}");
        var notJson = await cluster.RunCliAsync(TimeSpan.FromSeconds(30), "send", "all", "{nope");

        Assert.Equal((0, "sent to 2 workers\n"), (all.ExitCode, all.Stdout));
        Assert.Equal((0, "sent to 1 worker\n"), (one.ExitCode, one.Stdout));
        Assert.NotEqual(0, missing.ExitCode);
        Assert.Contains("no worker 9", missing.Stderr);
        Assert.NotEqual(0, notJson.ExitCode);
        Assert.Contains("not valid JSON", notJson.Stderr);

        var worker1 = workers.Single(w => w.Id == 1).Pid;
        var seen = await ReceivedByEveryWorkerAsync(cluster, client, r => r.Received.Contains("the supervisor: {\"key\":\"*\"}") && (r.Pid != worker1 || r.Received.Length == 2));
        Assert.All(seen, s => Assert.Contains("the supervisor: {\"key\":\"*\"}", s.Value));
        Assert.Equal(["the supervisor: {\"key\":\"*\"}", "the supervisor: {\"key\":\"only-one\"}"], seen[worker1]);
        Assert.Equal(["the supervisor: {\"key\":\"*\"}"], seen[workers.Single(w => w.Id == 0).Pid]);
    }

    // Asks over new connections (round-robin reaches every worker) until each worker's answer satisfies the condition.
    private static async Task<Dictionary<int, string[]>> ReceivedByEveryWorkerAsync(ClusterRun cluster, HttpClient client, Func<WorkerInbox, bool> done)
    {
        var pids = (await cluster.ListAsync()).Select(w => w.Pid).ToHashSet();
        var latest = new Dictionary<int, string[]>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (DateTime.UtcNow < deadline)
        {
            var received = (await client.GetFromJsonAsync<WorkerInbox>("/cache/messages"))!;
            if (done(received))
            {
                latest[received.Pid] = received.Received;
            }

            if (pids.SetEquals(latest.Keys))
            {
                return latest;
            }

            await Task.Delay(20);
        }

        throw new TimeoutException($"not every worker got the message: {string.Join("; ", latest.Select(l => $"{l.Key}: {string.Join(", ", l.Value)}"))}");
    }
}
