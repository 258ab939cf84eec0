using KestrelCluster.Supervisor.Control;
using KestrelCluster.Supervisor.Logging;
using KestrelCluster.Supervisor.Workers;

namespace KestrelCluster.Supervisor.Hosting;

// Graceful stop (settle, drain, kill after --kill-timeout) and fatal errors.
internal sealed partial class ClusterSupervisor
{
    // A reload or scale in progress when the cluster stops (or fails) will never finish: answer its waiters now.
    private void AbandonPendingOperations(string reason)
    {
        FailUpgrade(reason);
        var waiters = (_reload?.Waiters ?? [])
            .Concat(_publish?.Waiters ?? [])
            .Concat(_published?.Publish.Waiters ?? [])
            .Concat(_queuedReloads.Select(r => r.Waiter).OfType<TaskCompletionSource<ControlResponse>>())
            .Concat(_scaleWaiters.Select(s => s.Waiter))
            .ToList();
        _reload = null;
        // A publish still running is cancelled as the loop ends; one that has finished is of no use now.
        _publish = null;
        DeleteApp(_published?.Command, _published?.Publish.Generation ?? 0);
        _published = null;
        _queuedReloads.Clear();
        _scaleWaiters.Clear();
        foreach (var waiter in waiters)
        {
            waiter.TrySetResult(ControlResponse.Failure(reason));
        }
    }

    // handedOver: an upgrade's new supervisor is systemd's main process now; our STOPPING=1 would be about it.
    private void BeginStop(string reason, bool handedOver = false)
    {
        if (_stopPhase != StopPhase.None)
        {
            return;
        }

        _stopping = true;
        if (!handedOver)
        {
            _systemd?.Notify($"STOPPING=1\nSTATUS=stopping ({reason})");
        }

        SupervisorLog.Stopping(_logger, reason, _options.KillTimeout.TotalSeconds);
        AbandonPendingOperations($"the cluster is stopping ({reason})");
        _listeners.StopAccepting();
        _stopPhase = StopPhase.Settling;
        _stopPhaseStartedAt = Now;
        OnTick();
    }

    private void DrainAll()
    {
        ForwardWaitingConnections();
        var closed = _dispatcher.Close();
        if (closed > 0)
        {
            SupervisorLog.ConnectionsExpired(_logger, closed, SettleLimit.TotalSeconds);
        }

        _stopPhase = StopPhase.Draining;
        _stopPhaseStartedAt = Now;
        foreach (var instance in _instances.ToList())
        {
            Drain(instance);
        }

        CompleteStopIfDone();
    }

    private void Drain(WorkerInstance instance)
    {
        var now = Now;
        instance.BeginDrain(now);
        if (instance.Session is { } session)
        {
            _dispatcher.StopDispatching(session);
            SendStopWhenSettled(instance, now);
            return;
        }

        // Not connected (yet, or any more): there is nothing in flight to finish.
        instance.KillNow(now);
    }

    // Stop goes out only once the worker has acknowledged every connection passed to it: Kestrel closes
    // a connection accepted during shutdown before reading its request, so none may arrive then.
    private void SendStopWhenSettled(WorkerInstance instance, long now)
    {
        if (instance.StopSent || instance.Session is not { } session)
        {
            return;
        }

        if (_dispatcher.UnackedOf(session) > 0 && now - instance.DrainStartedAt < SettleLimit.TotalMilliseconds)
        {
            return;
        }

        instance.MarkStopSent();
        if (!session.SendStop())
        {
            instance.KillNow(now);
        }
    }

    private void Fail(string message)
    {
        if (_exitCode == 0)
        {
            _errorOutput.WriteLine($"kestrel-cluster: error: {message}");
            _exitCode = 1;
        }

        _stopping = true;
        AbandonPendingOperations($"the cluster failed: {message}");

        _dispatcher.Close();
        _listeners.StopAccepting();
        var now = Now;
        foreach (var instance in _instances.ToList())
        {
            instance.KillNow(now);
        }

        _stopPhase = StopPhase.Killing;
        _stopPhaseStartedAt = now;
        CompleteStopIfDone();
    }

    private void CompleteStopIfDone()
    {
        if (_stopPhase is StopPhase.Draining or StopPhase.Killing && _instances.Count == 0)
        {
            _stopPhase = StopPhase.Done;
        }
    }
}
