using System.Diagnostics;

namespace KestrelCluster.Load;

/// <summary>One SIGKILL of a worker; At: a <see cref="Stopwatch.GetTimestamp"/> time just after kill(2) returned.</summary>
public sealed record WorkerKill(long At, int Pid);

/// <summary>
/// What a chaos run lost. A failure is put down to a kill when the request was in flight on the killed worker
/// as far as the client can tell: a keep-alive request whose connection was last answered by that worker and
/// which ended after the kill, or any other request that started before the kill and ended after it (within
/// <see cref="Chaos.InFlightWindow"/>). Everything else is unexplained and counts against the cluster.
/// </summary>
public sealed record ChaosReport(LoadResult Load, IReadOnlyList<WorkerKill> Kills, int SkippedKills, IReadOnlyList<(LoadFailure Failure, WorkerKill Kill)> InFlight, IReadOnlyList<LoadFailure> Unexplained)
{
    public int MaxInFlightPerKill => InFlight.Count == 0 ? 0 : InFlight.GroupBy(f => f.Kill).Max(g => g.Count());

    public override string ToString()
        => $"{Load}\n{Kills.Count} workers killed ({SkippedKills} ticks skipped: fewer than 2 ready workers); "
           + $"failed in flight on a killed worker: {InFlight.Count} (at most {MaxInFlightPerKill} per kill); unexplained failures: {Unexplained.Count}"
           + string.Concat(Unexplained.Take(10).Select(f => $"\n  unexplained: {f.Kind} ({f.Detail}) keep-alive={f.KeepAlive} last pid={f.LastPid} at {Chaos.Seconds(f.StartedAt):0.000}–{Chaos.Seconds(f.EndedAt):0.000} s"));
}

/// <summary>Kills a random ready worker with SIGKILL every interval while load runs, then accounts for every failure.</summary>
public static class Chaos
{
    public static readonly TimeSpan InFlightWindow = TimeSpan.FromSeconds(5);

    private static long _origin;

    /// <summary>Seconds since the chaos run started, for reports.</summary>
    public static double Seconds(long timestamp) => Stopwatch.GetElapsedTime(Interlocked.Read(ref _origin), timestamp).TotalSeconds;

    /// <summary>
    /// Every interval, kills one of <paramref name="readyWorkers"/> at random, as long as another stays ready
    /// (killing the last one would test restart latency, not whether accepted connections survive).
    /// </summary>
    public static async Task<(IReadOnlyList<WorkerKill> Kills, int Skipped)> KillWorkersAsync(Func<IReadOnlyList<int>> readyWorkers, Action<int> kill, TimeSpan interval, TimeSpan duration, int seed = 0, Action<string>? log = null)
    {
        Interlocked.CompareExchange(ref _origin, Stopwatch.GetTimestamp(), 0);
        var random = seed == 0 ? Random.Shared : new Random(seed);
        var kills = new List<WorkerKill>();
        var skipped = 0;
        using var timer = new PeriodicTimer(interval);
        var end = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        while (await timer.WaitForNextTickAsync().ConfigureAwait(false) && Stopwatch.GetTimestamp() < end)
        {
            var ready = readyWorkers();
            if (ready.Count < 2)
            {
                skipped++;
                continue;
            }

            var victim = ready[random.Next(ready.Count)];
            kill(victim);
            // Stamped once the signal is sent: a request that reached the worker just before is still in flight on it.
            kills.Add(new WorkerKill(Stopwatch.GetTimestamp(), victim));
            log?.Invoke($"{Seconds(kills[^1].At):0.000} s: killed pid {victim}");
        }

        return (kills, skipped);
    }

    public static ChaosReport Account(LoadResult load, IReadOnlyList<WorkerKill> kills, int skipped)
    {
        var window = (long)(InFlightWindow.TotalSeconds * Stopwatch.Frequency);
        var inFlight = new List<(LoadFailure, WorkerKill)>();
        var unexplained = new List<LoadFailure>();
        foreach (var failure in load.Failures)
        {
            var kill = kills.LastOrDefault(k => failure.KeepAlive && failure.LastPid is { } pid
                ? k.Pid == pid && k.At <= failure.EndedAt
                : k.At >= failure.StartedAt && k.At <= failure.EndedAt && failure.EndedAt - k.At <= window);
            if (kill is null)
            {
                unexplained.Add(failure);
            }
            else
            {
                inFlight.Add((failure, kill));
            }
        }

        return new ChaosReport(load, kills, skipped, inFlight, unexplained);
    }
}
