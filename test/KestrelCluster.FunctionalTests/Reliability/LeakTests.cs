using System.Net;
using KestrelCluster.Load;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Reliability;

// Every connection that passes through the cluster is closed everywhere it was held: the supervisor's fd count
// returns to its idle value, and so does each worker's. The 1,000,000-connection version is eng/leak-check.sh.
public sealed class LeakTests(ITestOutputHelper output)
{
    private static readonly TimeSpan SettleTimeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task TwentyThousandConnections_FdCountsReturnToIdleAndMemoryStaysFlat()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2);
        var target = new IPEndPoint(IPAddress.Loopback, cluster.Port);
        var workers = cluster.WorkerPids.ToList();
        int[] pids = [cluster.Pid, .. workers];

        // Warm up (JIT, pools, Kestrel's timers), then take the idle values.
        Assert.Equal(0, (await ConnectionChurn.RunAsync(target, 2_000, 16)).Failed);
        var idle = await SettledAsync(pids, _ => true);
        var before = pids.Select(ProcessInfo.RssKiB).ToArray();

        var result = await ConnectionChurn.RunAsync(target, 20_000, 16).WaitAsync(TimeSpan.FromMinutes(3));
        var after = await SettledAsync(pids, counts => counts.Zip(idle).All(c => c.First <= c.Second));
        var rss = pids.Select(ProcessInfo.RssKiB).ToArray();

        output.WriteLine(result.ToString());
        for (var i = 0; i < pids.Length; i++)
        {
            output.WriteLine($"{(i == 0 ? "supervisor" : $"worker {i - 1}")} pid {pids[i]}: fds {idle[i]} → {after[i]}, VmRSS {before[i] / 1024.0:0.0} → {rss[i] / 1024.0:0.0} MiB");
        }

        Assert.Equal(0, result.Failed);
        Assert.Equal(20_000, result.Answered);
        Assert.Equal(workers, cluster.LiveWorkerPids().Order());
        Assert.All(pids.Zip(idle, after), p => Assert.True(p.Third <= p.Second, $"pid {p.First}: {p.Second} fds idle, {p.Third} after"));
        // Memory: no per-connection growth. 20,000 leaked handoffs or sockets would be far more than the noise allowed here.
        Assert.All(Enumerable.Range(0, pids.Length), i => Assert.True(rss[i] - before[i] < 64 * 1024, $"pid {pids[i]} grew from {before[i]} to {rss[i]} KiB"));
        // Workers report their open connections once a second: wait for a report made after the load.
        await Wait.UntilAsync(async () => (await cluster.ListAsync()).Sum(w => w.OpenConnections) == 0, TimeSpan.FromSeconds(10));
    }

    // Waits until every process's fd count holds still for half a second (and meets the condition).
    private static async Task<int[]> SettledAsync(int[] pids, Func<int[], bool> condition)
    {
        var deadline = DateTime.UtcNow + SettleTimeout;
        var previous = pids.Select(ProcessInfo.FdCount).ToArray();
        while (true)
        {
            await Task.Delay(500);
            var counts = pids.Select(ProcessInfo.FdCount).ToArray();
            if (counts.SequenceEqual(previous) && condition(counts))
            {
                return counts;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"fd counts did not settle within {SettleTimeout.TotalSeconds} s: {string.Join(", ", counts)}");
            }

            previous = counts;
        }
    }
}
