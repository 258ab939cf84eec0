using Microsoft.Extensions.Logging;

namespace KestrelCluster.Supervisor.Logging;

// Event ids are fixed once published; add new ones at the end, never reuse.
internal static partial class SupervisorLog
{
    [LoggerMessage(1, LogLevel.Information, "Starting {Count} workers of {App}: {Command}", EventName = "Starting")]
    public static partial void Starting(ILogger logger, int count, string app, string command);

    [LoggerMessage(2, LogLevel.Information, "Listening on {EndPoint}", EventName = "Listening")]
    public static partial void Listening(ILogger logger, string endPoint);

    [LoggerMessage(3, LogLevel.Information, "Worker {WorkerId} started (pid {Pid}, generation {Generation})", EventName = "WorkerStarted")]
    public static partial void WorkerStarted(ILogger logger, int workerId, int pid, int generation);

    [LoggerMessage(4, LogLevel.Information, "Worker {WorkerId} ready (pid {Pid}, generation {Generation}) after {ElapsedMs} ms", EventName = "WorkerReady")]
    public static partial void WorkerReady(ILogger logger, int workerId, int pid, int generation, long elapsedMs);

    [LoggerMessage(5, LogLevel.Warning, "Worker {WorkerId} (pid {Pid}) exited unexpectedly: {Exit}", EventName = "WorkerCrashed")]
    public static partial void WorkerCrashed(ILogger logger, int workerId, int pid, string exit);

    [LoggerMessage(6, LogLevel.Information, "Restarting worker {WorkerId} in {DelayMs} ms", EventName = "WorkerRestarting")]
    public static partial void WorkerRestarting(ILogger logger, int workerId, long delayMs);

    [LoggerMessage(7, LogLevel.Warning, "Refused a channel peer (pid {Pid}, uid {Uid}): {Reason}", EventName = "PeerRefused")]
    public static partial void PeerRefused(ILogger logger, int pid, long uid, string reason);

    [LoggerMessage(8, LogLevel.Warning, "Worker {WorkerId} (pid {Pid}) broke the channel protocol ({Reason}); killing it", EventName = "WorkerProtocolViolation")]
    public static partial void WorkerProtocolViolation(ILogger logger, int workerId, int pid, string reason);

    [LoggerMessage(9, LogLevel.Information, "Stopping ({Reason}): draining workers for up to {KillTimeoutSeconds} s", EventName = "Stopping")]
    public static partial void Stopping(ILogger logger, string reason, double killTimeoutSeconds);

    [LoggerMessage(10, LogLevel.Information, "Stopped", EventName = "Stopped")]
    public static partial void Stopped(ILogger logger);

    [LoggerMessage(11, LogLevel.Warning, "Killing worker {WorkerId} (pid {Pid}): {Reason}", EventName = "WorkerKilled")]
    public static partial void WorkerKilled(ILogger logger, int workerId, int pid, string reason);

    [LoggerMessage(12, LogLevel.Warning, "Closed {Count} connections that waited more than {Seconds} s for a ready worker", EventName = "ConnectionsExpired")]
    public static partial void ConnectionsExpired(ILogger logger, int count, double seconds);

    [LoggerMessage(13, LogLevel.Information, "Worker {WorkerId} left {Count} unacknowledged connections; they go to other workers", EventName = "ConnectionsRedispatched")]
    public static partial void ConnectionsRedispatched(ILogger logger, int workerId, int count);

    [LoggerMessage(14, LogLevel.Error, "Accepting on {EndPoint} failed (errno {Errno})", EventName = "AcceptFailed")]
    public static partial void AcceptFailed(ILogger logger, string endPoint, int errno);

    [LoggerMessage(15, LogLevel.Information, "All {Count} workers ready", EventName = "AllReady")]
    public static partial void AllReady(ILogger logger, int count);

    [LoggerMessage(16, LogLevel.Information, "Worker {WorkerId} (pid {Pid}) exited: {Exit}", EventName = "WorkerExited")]
    public static partial void WorkerExited(ILogger logger, int workerId, int pid, string exit);

    [LoggerMessage(17, LogLevel.Warning, "Worker {WorkerId} (pid {Pid}) did not become ready within {Seconds} s", EventName = "WorkerNotReady")]
    public static partial void WorkerNotReady(ILogger logger, int workerId, int pid, double seconds);

    [LoggerMessage(18, LogLevel.Information, "Reloading ({Source}): generation {From} → {To}, one worker at a time", EventName = "ReloadStarting")]
    public static partial void ReloadStarting(ILogger logger, string source, int from, int to);

    [LoggerMessage(19, LogLevel.Information, "Reload complete: {Count} workers on generation {Generation}", EventName = "ReloadCompleted")]
    public static partial void ReloadCompleted(ILogger logger, int generation, int count);

    [LoggerMessage(20, LogLevel.Error, "Reload failed: {Reason}; generation {Generation} keeps serving", EventName = "ReloadFailed")]
    public static partial void ReloadFailed(ILogger logger, string reason, int generation);

    [LoggerMessage(21, LogLevel.Information, "Scaling from {From} to {To} workers", EventName = "Scaling")]
    public static partial void Scaling(ILogger logger, int from, int to);

    [LoggerMessage(22, LogLevel.Warning, "Worker {WorkerId} (pid {Pid}) sent no heartbeat for {Seconds} s (hung or starved); replacing it", EventName = "WorkerHung")]
    public static partial void WorkerHung(ILogger logger, int workerId, int pid, double seconds);

    [LoggerMessage(23, LogLevel.Warning, "Worker {WorkerId} (pid {Pid}) uses {MemoryMb} MB, above --max-memory {LimitMb} MB; replacing it once its successor is ready", EventName = "WorkerOverMemory")]
    public static partial void WorkerOverMemory(ILogger logger, int workerId, int pid, long memoryMb, long limitMb);

    [LoggerMessage(24, LogLevel.Information, "Worker replaced (generation {Generation})", EventName = "WorkerRecycled")]
    public static partial void WorkerRecycled(ILogger logger, int generation);

    [LoggerMessage(25, LogLevel.Error, "Replacing a worker over its memory limit failed: {Reason}; it keeps serving", EventName = "RecycleFailed")]
    public static partial void RecycleFailed(ILogger logger, string reason);

    [LoggerMessage(26, LogLevel.Error, "Internal error while handling {Event}; the supervisor carries on", EventName = "EventFailed")]
    public static partial void EventFailed(ILogger logger, string @event, Exception exception);

    [LoggerMessage(27, LogLevel.Information, "Admin endpoints (/healthz, /readyz, /metrics) on {Addresses}", EventName = "AdminListening")]
    public static partial void AdminListening(ILogger logger, string addresses);

    [LoggerMessage(28, LogLevel.Information, "Message from worker {WorkerId} (pid {Pid}): {Json}", EventName = "MessageFromWorker")]
    public static partial void MessageFromWorker(ILogger logger, int workerId, int pid, string json);

    [LoggerMessage(29, LogLevel.Warning, "A message for worker {WorkerId} (pid {Pid}) was dropped: its channel is full or closed", EventName = "MessageDropped")]
    public static partial void MessageDropped(ILogger logger, int workerId, int pid);

    [LoggerMessage(30, LogLevel.Information, "Listening on {EndPoint} (socket passed by systemd)", EventName = "AdoptedSocket")]
    public static partial void AdoptedSocket(ILogger logger, string endPoint);

    [LoggerMessage(31, LogLevel.Warning, "Dropped {Count} lines of output: stdout was blocked", EventName = "OutputDropped")]
    public static partial void OutputDropped(ILogger logger, long count);

    [LoggerMessage(32, LogLevel.Error, "Cannot start worker {WorkerId}: {Reason}; the other workers keep serving, retrying in {DelayMs} ms", EventName = "WorkerSpawnFailed")]
    public static partial void WorkerSpawnFailed(ILogger logger, int workerId, string reason, long delayMs);

    [LoggerMessage(33, LogLevel.Warning, "Worker {WorkerId} is failing ({Failures} failures in a row, last: {Reason}); retrying in {DelayMs} ms while the other workers serve", EventName = "SlotFailing")]
    public static partial void SlotFailing(ILogger logger, int workerId, int failures, string reason, long delayMs);

    [LoggerMessage(34, LogLevel.Information, "Worker {WorkerId} recovered: ready again after {Failures} failures", EventName = "SlotRecovered")]
    public static partial void SlotRecovered(ILogger logger, int workerId, int failures);

    [LoggerMessage(35, LogLevel.Information, "Reload ({Source}) queued: it runs as one more pass once the reload to generation {Current} has finished", EventName = "ReloadQueued")]
    public static partial void ReloadQueued(ILogger logger, string source, int current);

    [LoggerMessage(36, LogLevel.Information, "Reload ({Source}): publishing {Project} (Release) for generation {Generation}; the workers keep serving meanwhile", EventName = "PublishStarting")]
    public static partial void PublishStarting(ILogger logger, string project, int generation, string source);

    [LoggerMessage(37, LogLevel.Error, "Reload refused: the build of {Project} failed: {Errors}; generation {Generation} keeps serving", EventName = "PublishFailed")]
    public static partial void PublishFailed(ILogger logger, string project, string errors, int generation);

    [LoggerMessage(38, LogLevel.Information, "Published generation {Generation} in {ElapsedMs} ms to {Folder}", EventName = "Published")]
    public static partial void Published(ILogger logger, int generation, long elapsedMs, string folder);

    [LoggerMessage(39, LogLevel.Information, "Removed the app of generation {Generation} ({Folder}): none of its workers runs any more", EventName = "PublishRemoved")]
    public static partial void PublishRemoved(ILogger logger, int generation, string folder);

    [LoggerMessage(40, LogLevel.Warning, "Cannot remove the app of generation {Generation} ({Folder}): {Reason}", EventName = "PublishRemoveFailed")]
    public static partial void PublishRemoveFailed(ILogger logger, int generation, string folder, string reason);

    [LoggerMessage(41, LogLevel.Warning, "Worker {WorkerId} (pid {Pid}) ran {Seconds} s and never connected to the supervisor: most likely the app is not using the cluster transport and listens on ports of its own. NativeAOT and trimmed apps run no startup hook (nor does any app with KESTREL_CLUSTER_STARTUP_HOOK=0): add `builder.WebHost.UseClusterTransport();` (package KestrelCluster.Transport) to the app", EventName = "WorkerNeverJoined")]
    public static partial void WorkerNeverJoined(ILogger logger, int workerId, int pid, double seconds);

    [LoggerMessage(42, LogLevel.Information, "Shared balancing on {EndPoint}: a listening socket per worker, new connections spread {Steering}", EventName = "SharedSteering")]
    public static partial void SharedSteering(ILogger logger, string endPoint, string steering);

    [LoggerMessage(43, LogLevel.Information, "Upgrade ({Source}): started the new supervisor (pid {Pid}): {CommandLine}; this one serves until its workers are ready", EventName = "UpgradeStarted")]
    public static partial void UpgradeStarted(ILogger logger, string source, int pid, string commandLine);

    [LoggerMessage(44, LogLevel.Warning, "Upgrade ({Source}) refused: {Reason}", EventName = "UpgradeRefused")]
    public static partial void UpgradeRefused(ILogger logger, string source, string reason);

    [LoggerMessage(45, LogLevel.Error, "Upgrade failed: {Reason}; this supervisor keeps serving", EventName = "UpgradeFailed")]
    public static partial void UpgradeFailed(ILogger logger, string reason);

    [LoggerMessage(46, LogLevel.Information, "Upgrade: the new supervisor (pid {Pid}) serves the cluster now; this one stops accepting, drains its workers and exits", EventName = "UpgradeHandedOver")]
    public static partial void UpgradeHandedOver(ILogger logger, int pid);

    [LoggerMessage(47, LogLevel.Information, "Listening on {EndPoint} (socket handed over by the supervisor this one replaces)", EventName = "AdoptedFromUpgrade")]
    public static partial void AdoptedFromUpgrade(ILogger logger, string endPoint);

    [LoggerMessage(48, LogLevel.Information, "Took over the cluster from the supervisor this one replaces (pid {Pid}): accepting on {Count} listening sockets", EventName = "TookOver")]
    public static partial void TookOver(ILogger logger, int pid, int count);

    [LoggerMessage(49, LogLevel.Information, "Handed {Count} connections no worker of this supervisor took to the new supervisor", EventName = "ConnectionsHandedOver")]
    public static partial void ConnectionsHandedOver(ILogger logger, int count);

    [LoggerMessage(50, LogLevel.Warning, "Cannot take over the control socket and pid file: {Reason}", EventName = "TakeOverFilesFailed")]
    public static partial void TakeOverFilesFailed(ILogger logger, string reason);

    [LoggerMessage(51, LogLevel.Error, "Cannot serve --admin-urls {Urls} after taking over from the old supervisor: {Reason}; the cluster serves without its admin endpoints", EventName = "AdminTakeOverFailed")]
    public static partial void AdminTakeOverFailed(ILogger logger, string urls, string reason);

    [LoggerMessage(52, LogLevel.Warning, "A SignalR backplane frame for worker {WorkerId} (pid {Pid}) was dropped: its channel is full or closed ({Dropped} dropped since start)", EventName = "HubFramesDropped")]
    public static partial void HubFramesDropped(ILogger logger, int workerId, int pid, long dropped);

    [LoggerMessage(53, LogLevel.Information, "Request-aware affinity on ({Reason}): each new connection goes to the worker its first request's kc-worker cookie names", EventName = "AffinityOn")]
    public static partial void AffinityOn(ILogger logger, string reason);

    [LoggerMessage(54, LogLevel.Warning, "Worker {Id} serves SignalR or Blazor Server endpoints, but with --balance shared the kernel spreads connections: a client's negotiate and its transport request may reach different workers (use round-robin, which then routes by cookie)", EventName = "AffinityUnavailable")]
    public static partial void AffinityUnavailable(ILogger logger, int id);

    [LoggerMessage(55, LogLevel.Information, "Accepting on {EndPoint} on {Threads} threads, each on its own SO_REUSEPORT socket", EventName = "AcceptingOnThreads")]
    public static partial void AcceptingOnThreads(ILogger logger, string endPoint, int threads);
}
