using KestrelCluster.Supervisor.Control;
using KestrelCluster.Supervisor.Workers;

namespace KestrelCluster.Supervisor.Hosting;

// What the supervisor loop reacts to: everything that changes lifecycle state arrives as one of these.
internal abstract record SupervisorEvent;

internal sealed record Tick : SupervisorEvent;

internal sealed record WorkerAdmitted(WorkerSession Session) : SupervisorEvent;

internal sealed record WorkerBecameReady(WorkerSession Session) : SupervisorEvent;

internal sealed record WorkerChannelClosed(WorkerSession Session, string Reason, bool Violation) : SupervisorEvent;

internal sealed record WorkerExited(WorkerInstance Instance, int ExitCode) : SupervisorEvent;

internal sealed record StopRequested(string Reason) : SupervisorEvent;

internal sealed record FatalError(string Message) : SupervisorEvent;

internal sealed record WorkerMessage(WorkerSession Session, int Target, byte[] Json) : SupervisorEvent;

internal sealed record ControlCommand(ControlRequest Request, TaskCompletionSource<ControlResponse>? Waiter, string Source) : SupervisorEvent;

internal sealed record PublishCompleted(PublishResult Result) : SupervisorEvent;

// Upgrade, old supervisor: how the new one is doing.
internal sealed record UpgradeReported(Upgrade.UpgradeProgress Progress, string? Reason) : SupervisorEvent;

// Upgrade, new supervisor: the old one said to take over, or died.
internal sealed record UpgradeTakeOver : SupervisorEvent;

// A reload waiting for its app to be published (--project): who asked, and the generation it will become.
internal sealed record PendingPublish(IReadOnlyList<TaskCompletionSource<ControlResponse>> Waiters, string Source, int Generation, long StartedAt);

// A rolling reload, one slot at a time: start the new generation's worker, wait until it is ready, drain the old.
internal sealed class ReloadOperation(int fromGeneration, int toGeneration, Queue<WorkerSlot> pending)
{
    public int FromGeneration { get; } = fromGeneration;

    public int ToGeneration { get; } = toGeneration;

    public Queue<WorkerSlot> Pending { get; } = pending;

    public WorkerInstance? Incoming { get; set; }

    public string? FailureReason { get; set; }

    // Replacing one worker over --max-memory: same generation, nobody waiting on it.
    public bool IsRecycle { get; init; }

    public List<TaskCompletionSource<ControlResponse>> Waiters { get; } = [];
}
