namespace KestrelCluster.Supervisor.Workers;

internal enum WorkerState
{
    // process started; not yet ready for connections
    Starting,
    // host started: receives connections
    Ready,
    // asked to stop: receives nothing new, finishes what it has
    Draining,
    // process gone
    Exited,
}
