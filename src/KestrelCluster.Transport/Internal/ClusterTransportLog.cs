using System.Net;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Transport;

// Event ids are fixed once published; add new ones at the end, never reuse.
internal static partial class ClusterTransportLog
{
    [LoggerMessage(1, LogLevel.Debug, "Joined the kestrel-cluster supervisor as worker {WorkerId}, generation {Generation}.", EventName = "Connected")]
    public static partial void Connected(ILogger logger, int workerId, int generation);

    [LoggerMessage(2, LogLevel.Debug, "The supervisor listens on {EndPoint} for this worker's endpoint {Requested}.", EventName = "Bound")]
    public static partial void Bound(ILogger logger, EndPoint requested, EndPoint endPoint);

    [LoggerMessage(3, LogLevel.Debug, "Worker {WorkerId}, generation {Generation}, is ready for connections.", EventName = "ReportedReady")]
    public static partial void ReportedReady(ILogger logger, int workerId, int generation);

    [LoggerMessage(4, LogLevel.Information, "The kestrel-cluster supervisor asked this worker to stop.", EventName = "StopRequested")]
    public static partial void StopRequested(ILogger logger);

    [LoggerMessage(5, LogLevel.Warning, "The kestrel-cluster supervisor is gone ({Reason}); stopping the application.", EventName = "SupervisorGone")]
    public static partial void SupervisorGone(ILogger logger, string reason);

    [LoggerMessage(6, LogLevel.Warning, "Dropped a cluster message that is not JSON: {Reason}", EventName = "BadMessage")]
    public static partial void BadMessage(ILogger logger, string reason);

    [LoggerMessage(7, LogLevel.Warning, "This worker is close to its open file limit ({Limit}): refused {Count} passed connections, which the supervisor passes to another worker. Logged once until connections fit again.", EventName = "FdLimitReached")]
    public static partial void FdLimitReached(ILogger logger, int count, int limit);

    [LoggerMessage(8, LogLevel.Information, "Draining: {Open} open connections are told Connection: close on their next HTTP/1.x response; the app stops when none is left, or after {Seconds} s.", EventName = "Draining")]
    public static partial void Draining(ILogger logger, int open, double seconds);

    [LoggerMessage(9, LogLevel.Information, "The drain window ended after {Seconds} s with {Open} connections still open; stopping the application.", EventName = "DrainTimedOut")]
    public static partial void DrainTimedOut(ILogger logger, int open, double seconds);

    [LoggerMessage(10, LogLevel.Information, "Data protection keys are shared by the cluster's workers in {Path}, until the supervisor stops; to keep them longer, persist them yourself (PersistKeysToFileSystem).", EventName = "KeysShared")]
    public static partial void KeysShared(ILogger logger, string path);

    [LoggerMessage(11, LogLevel.Warning, "Could not lock {Path} to create the cluster's first data protection key alone ({Reason}); going on without the lock.", EventName = "KeyRingLockFailed")]
    public static partial void KeyRingLockFailed(ILogger logger, string path, string reason);

    [LoggerMessage(12, LogLevel.Information, "Application started in a kestrel-cluster worker.\nHosting environment: {EnvironmentName}\nContent root path: {ContentRoot}", EventName = "ApplicationStarted")]
    public static partial void ApplicationStarted(ILogger logger, string environmentName, string contentRoot);

    [LoggerMessage(13, LogLevel.Information, "Application is shutting down...", EventName = "ApplicationStopping")]
    public static partial void ApplicationStopping(ILogger logger);

    [LoggerMessage(14, LogLevel.Warning, "Dropped a SignalR backplane frame from another worker: {Count} dropped so far, with {Capacity} waiting to be written to this worker's clients.", EventName = "HubFramesDropped")]
    public static partial void HubFramesDropped(ILogger logger, long count, int capacity);

    [LoggerMessage(15, LogLevel.Warning, "Dropped a malformed SignalR backplane frame from worker pid {Sender}: {Reason}", EventName = "BadHubFrame")]
    public static partial void BadHubFrame(ILogger logger, int sender, string reason);

    [LoggerMessage(16, LogLevel.Warning, "Could not write a message from another worker to the clients of hub {Hub}.", EventName = "HubDeliveryFailed")]
    public static partial void HubDeliveryFailed(ILogger logger, string hub, Exception exception);

    [LoggerMessage(17, LogLevel.Information, "Draining: closing {Count} connections of hub {Hub} so that their clients reconnect to another worker.", EventName = "HubConnectionsClosing")]
    public static partial void HubConnectionsClosing(ILogger logger, int count, string hub);
}
