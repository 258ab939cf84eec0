namespace KestrelCluster.Supervisor.Distribution;

// A passed connection the supervisor still owns: its fd stays open here until the worker acknowledges it.
// AcceptedAt is the dispatcher's clock (ms, for expiry); Timestamp is Stopwatch ticks (for handoff latency).
internal readonly record struct Handoff(int Fd, int ListenerId, long AcceptedAt, long Timestamp = 0);

// What the dispatcher needs of a worker. All fields are guarded by the dispatcher's lock.
internal abstract class DispatchTarget
{
    internal readonly Dictionary<long, Handoff> Unacked = [];

    internal ulong BoundListeners;

    internal bool IsReady;

    internal bool IsLost;

    internal long Dispatched;

    internal long Accepted;

    public abstract int Id { get; }

    /// <summary>Sends one connection without blocking; returns 0 or an errno (EAGAIN: the channel is full).</summary>
    protected internal abstract int SendConnection(int listenerId, long sequence, int fd);

    internal bool Serves(int listenerId) => (BoundListeners & (1UL << listenerId)) != 0;
}
