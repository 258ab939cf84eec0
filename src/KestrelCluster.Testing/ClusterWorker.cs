namespace KestrelCluster.Testing;

/// <summary>One worker process of a cluster started by <see cref="ClusterApplicationFactory{TEntryPoint}"/>.</summary>
/// <param name="Id">The worker's slot, 0..N-1 (<c>KESTREL_CLUSTER_WORKER_ID</c>); a restarted or reloaded worker keeps its slot.</param>
/// <param name="Pid">The worker's process id.</param>
/// <param name="Generation">1 at start, +1 on each rolling reload (<c>KESTREL_CLUSTER_GENERATION</c>).</param>
/// <param name="State">Where the worker is in its life.</param>
/// <param name="Restarts">How many times the supervisor restarted this slot after a crash.</param>
/// <param name="OpenConnections">Connections the supervisor passed to this worker that are still open.</param>
public sealed record ClusterWorker(int Id, int Pid, int Generation, ClusterWorkerState State, int Restarts, int OpenConnections);

/// <summary>Where a worker is in its life. A worker that has exited is no longer listed.</summary>
public enum ClusterWorkerState
{
    /// <summary>Started, not yet serving (its host has not finished starting).</summary>
    Starting,

    /// <summary>Serving: the supervisor passes it connections.</summary>
    Ready,

    /// <summary>Finishing its in-flight requests before it exits (stop, reload or scale down).</summary>
    Draining,

    /// <summary>A slot waiting for its turn to start (workers start a few at a time); no process yet (pid 0).</summary>
    Pending,

    /// <summary>A slot whose workers keep crashing or cannot be started: it retries with a growing delay while the others serve.</summary>
    Failing,
}
