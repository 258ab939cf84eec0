using KestrelCluster.Protocol;

namespace KestrelCluster.Supervisor.Distribution;

// A passed connection the supervisor still owns: its fd stays open here until the worker acknowledges it.
// AcceptedAt is the dispatcher's clock (ms, for expiry); Timestamp is Stopwatch ticks (for handoff latency);
// Key is the client's address hash for sticky distribution (0: none); Worker is the slot request-aware affinity
// asks for (-1: none).
internal readonly record struct Handoff(int Fd, int ListenerId, long AcceptedAt, long Timestamp = 0, ulong Key = 0, int Worker = -1);

// One entry of a Connections frame.
internal readonly record struct OutgoingConnection(int ListenerId, long Sequence, int Fd);

// What the dispatcher needs of a worker. All fields are guarded by the dispatcher's lock.
internal abstract class DispatchTarget
{
    internal readonly Dictionary<long, Handoff> Unacked = [];

    internal ulong BoundListeners;

    internal bool IsReady;

    internal bool IsLost;

    internal long Dispatched;

    internal long Accepted;

    // The open connection count of the worker's last Status frame, and Accepted at that moment: what it
    // accepted since then counts as open until the next report (closes show up only in reports).
    internal int ReportedOpen;

    internal long AcceptedAtReport;

    // For least-connections: open as last reported, plus accepted since, plus passed but not yet acknowledged.
    internal long EstimatedOpen => ReportedOpen + (Accepted - AcceptedAtReport) + Unacked.Count;

    public abstract int Id { get; }

    // Connections assigned during one accept batch, sent together in one frame when the batch ends.
    internal readonly OutgoingConnection[] Pending = new OutgoingConnection[FrameLimits.MaxFdsPerFrame];

    internal int PendingCount;

    /// <summary>
    /// Sends connections (at most a frame's worth) in one message without blocking; all or none of them go.
    /// Returns 0 or an errno (EAGAIN: the channel is full).
    /// </summary>
    protected internal abstract int SendConnections(ReadOnlySpan<OutgoingConnection> connections);

    internal bool Serves(int listenerId) => (BoundListeners & (1UL << listenerId)) != 0;
}
