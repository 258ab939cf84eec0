namespace KestrelCluster.Supervisor.Workers;

// A stable worker id (0..N-1) across restarts, like pm2's NODE_APP_INSTANCE.
internal sealed class WorkerSlot(int id, int generation)
{
    public int Id { get; } = id;

    // The generation this slot's worker runs; a rolling reload moves it up once the new worker is ready.
    public int Generation { get; set; } = generation;

    public WorkerInstance? Current { get; set; }

    public int Restarts { get; set; }

    // crashes in a row, for the backoff; reset once a worker has stayed up a while
    public int ConsecutiveCrashes { get; set; }

    // exits before ever becoming ready, in a row: too many ends the run
    public int FailuresBeforeReady { get; set; }

    public long? RestartAt { get; set; }

    // scaled away: its worker drains and the slot goes when it has exited
    public bool Retiring { get; set; }
}
