namespace KestrelCluster.Supervisor.Workers;

// A stable worker id (0..N-1) across restarts, like pm2's NODE_APP_INSTANCE.
internal sealed class WorkerSlot(int id)
{
    public int Id { get; } = id;

    public WorkerInstance? Current { get; set; }

    public int Restarts { get; set; }

    // crashes in a row, for the backoff; reset once a worker has stayed up a while
    public int ConsecutiveCrashes { get; set; }

    // exits before ever becoming ready, in a row: too many ends the run
    public int FailuresBeforeReady { get; set; }

    public long? RestartAt { get; set; }
}
