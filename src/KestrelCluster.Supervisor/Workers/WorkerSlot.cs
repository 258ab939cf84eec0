namespace KestrelCluster.Supervisor.Workers;

// A stable worker id (0..N-1) across restarts, like pm2's NODE_APP_INSTANCE, and its restart policy: a slot
// whose worker crashes, cannot be spawned or never becomes ready backs off (capped) and keeps retrying.
internal sealed class WorkerSlot(int id, int generation)
{
    // A slot whose workers exit this many times in a row before one is ever ready ends a run that never served.
    public const int MaxFailuresBeforeReady = 5;
    private static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(250);
    public static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);
    // A worker that served this long is healthy again: its next crash restarts at once.
    private static readonly TimeSpan StableUptime = TimeSpan.FromSeconds(30);

    public int Id { get; } = id;

    // The generation this slot's worker runs; a rolling reload moves it up once the new worker is ready.
    public int Generation { get; set; } = generation;

    public WorkerInstance? Current { get; set; }

    public int Restarts { get; private set; }

    // failures in a row (crash, failed spawn, ready timeout), for the backoff; reset once a worker has served a while
    public int ConsecutiveFailures { get; private set; }

    // exits before ever becoming ready, in a row
    public int FailuresBeforeReady { get; private set; }

    // When the next worker may start; null while one runs or the slot is waiting for nothing.
    public long? RestartAt { get; private set; }

    // Failing: it failed again before a worker of it became ready or served a while (so it backs off). Shown in
    // list, /readyz and metrics. A single crash followed by an immediate restart is not failing.
    public bool IsFailing { get; private set; }

    public string? LastFailure { get; private set; }

    // Since it was last ready, a worker of this slot exited having bound its ports itself instead of joining the channel.
    public bool BoundPortsItself { get; set; }

    // scaled away: its worker drains and the slot goes when it has exited
    public bool Retiring { get; private set; }

    public bool WantsWorker(long now) => Current is null && !Retiring && RestartAt is { } due && due <= now;

    /// <summary>A new slot, or one whose worker must start at once.</summary>
    public void StartSoon(long now) => RestartAt = now;

    public void Started(WorkerInstance instance)
    {
        Current = instance;
        RestartAt = null;
    }

    public void Ready()
    {
        IsFailing = false;
        BoundPortsItself = false;
        FailuresBeforeReady = 0;
        LastFailure = null;
    }

    /// <summary>
    /// The slot's worker crashed, was killed for a deadline, or could not be spawned. Schedules the next start
    /// and returns its delay: 0 for a first failure after a stable run, then 250 ms doubling up to 30 s.
    /// </summary>
    public TimeSpan Failed(long now, string reason, bool becameReady, long servedMilliseconds)
    {
        Current = null;
        LastFailure = reason;
        Restarts++;
        if (!becameReady)
        {
            FailuresBeforeReady++;
        }

        // Only time spent serving counts as stable: a worker killed for its ready timeout was never healthy.
        ConsecutiveFailures = becameReady && servedMilliseconds >= StableUptime.TotalMilliseconds ? 1 : ConsecutiveFailures + 1;
        IsFailing |= ConsecutiveFailures > 1;
        var delay = BackoffFor(ConsecutiveFailures);
        RestartAt = now + (long)delay.TotalMilliseconds;
        return delay;
    }

    public void Retire()
    {
        Retiring = true;
        RestartAt = null;
    }

    internal static TimeSpan BackoffFor(int consecutiveFailures)
    {
        if (consecutiveFailures <= 1)
        {
            return TimeSpan.Zero;
        }

        var factor = Math.Pow(2, Math.Min(consecutiveFailures - 2, 16));
        return TimeSpan.FromMilliseconds(Math.Min(FirstBackoff.TotalMilliseconds * factor, MaxBackoff.TotalMilliseconds));
    }
}
