using KestrelCluster.Supervisor.Control;
using KestrelCluster.Supervisor.Workers;

namespace KestrelCluster.Supervisor.Hosting;

// Rolling reload, memory recycling (a one-slot reload) and scaling.
internal sealed partial class ClusterSupervisor
{
    private void StartReload(TaskCompletionSource<ControlResponse>? waiter, string source)
    {
        if (_reload is { IsRecycle: true })
        {
            // A memory recycle is replacing one worker; the reload follows as soon as it is done.
            _reloadAfterRecycle.Add((waiter, source));
            return;
        }

        if (_reload is not null)
        {
            if (waiter is not null)
            {
                _reload.Waiters.Add(waiter);
            }

            return;
        }

        var from = Generation;
        Generation++;
        SupervisorLog.ReloadStarting(_logger, source, from, Generation);
        _systemd?.Notify($"RELOADING=1\nMONOTONIC_USEC={System.Diagnostics.Stopwatch.GetTimestamp() * 1_000_000 / System.Diagnostics.Stopwatch.Frequency}\nSTATUS=reloading to generation {Generation}");
        _reload = new ReloadOperation(from, Generation, new Queue<WorkerSlot>(_slots.Where(s => !s.Retiring)));
        if (waiter is not null)
        {
            _reload.Waiters.Add(waiter);
        }

        ContinueReload();
    }

    private void ContinueReload()
    {
        var reload = _reload!;
        reload.Incoming = null;
        while (reload.Pending.TryDequeue(out var slot))
        {
            if (!_slots.Contains(slot))
            {
                continue;
            }

            slot.RestartAt = null;
            reload.Incoming = Spawn(slot, reload.ToGeneration);
            return;
        }

        _reload = null;
        if (reload.IsRecycle)
        {
            SupervisorLog.WorkerRecycled(_logger, reload.ToGeneration);
        }
        else
        {
            SupervisorLog.ReloadCompleted(_logger, reload.ToGeneration, _slots.Count);
            _systemd?.Notify($"READY=1\nSTATUS={_slots.Count} workers ready, generation {reload.ToGeneration}");
            foreach (var waiter in reload.Waiters)
            {
                waiter.TrySetResult(ControlResponse.Success($"reloaded {_slots.Count} workers to generation {reload.ToGeneration}", ListWorkers()));
            }
        }

        StartQueuedReload();
    }

    private void StartQueuedReload()
    {
        if (_reloadAfterRecycle.Count == 0 || _stopPhase != StopPhase.None)
        {
            return;
        }

        var queued = _reloadAfterRecycle.ToList();
        _reloadAfterRecycle.Clear();
        foreach (var (waiter, source) in queued)
        {
            StartReload(waiter, source);
        }
    }

    private void FailReload(string reason)
    {
        var reload = _reload!;
        _reload = null;
        reason = reload.FailureReason ?? reason;
        if (reload.IsRecycle)
        {
            // The worker over its memory limit keeps serving; the next sample tries again.
            SupervisorLog.RecycleFailed(_logger, reason);
            StartQueuedReload();
            return;
        }

        // Slots not yet replaced keep serving the old generation; that is what restarts use too.
        Generation = reload.FromGeneration;
        SupervisorLog.ReloadFailed(_logger, reason, reload.FromGeneration);
        _systemd?.Notify($"READY=1\nSTATUS=reload failed; generation {reload.FromGeneration} serving");
        foreach (var waiter in reload.Waiters)
        {
            waiter.TrySetResult(ControlResponse.Failure($"reload failed: {reason}; the workers of generation {reload.FromGeneration} keep serving"));
        }
    }

    private void Scale(int workers, TaskCompletionSource<ControlResponse>? waiter)
    {
        var active = _slots.Where(s => !s.Retiring).OrderBy(s => s.Id).ToList();
        SupervisorLog.Scaling(_logger, active.Count, workers);
        if (workers > active.Count)
        {
            var nextId = 0;
            for (var added = active.Count; added < workers; added++)
            {
                while (_slots.Any(s => s.Id == nextId))
                {
                    nextId++;
                }

                var slot = new WorkerSlot(nextId, Generation);
                _slots.Add(slot);
                StartWorker(slot);
            }
        }
        else
        {
            foreach (var slot in active.Skip(workers))
            {
                slot.Retiring = true;
                slot.RestartAt = null;
                if (slot.Current is { } current)
                {
                    Drain(current);
                }
                else
                {
                    _slots.Remove(slot);
                }
            }
        }

        _announcedAllReady = false;
        if (waiter is not null)
        {
            _scaleWaiters.Add((waiter, Environment.TickCount64 + (long)_options.ReadyTimeout.TotalMilliseconds + 5_000));
        }

        CompleteScaleWaiters();
    }

    private void CompleteScaleWaiters()
    {
        if (_scaleWaiters.Count == 0 || _slots.Any(s => s.Retiring || s.Current?.State != WorkerState.Ready))
        {
            return;
        }

        foreach (var (waiter, _) in _scaleWaiters)
        {
            waiter.TrySetResult(ControlResponse.Success($"{_slots.Count} workers ready", ListWorkers()));
        }

        _scaleWaiters.Clear();
    }
}
