using KestrelCluster.Supervisor.Control;
using KestrelCluster.Supervisor.Logging;
using KestrelCluster.Supervisor.Workers;

namespace KestrelCluster.Supervisor.Hosting;

// Rolling reload, memory recycling (a one-slot reload) and scaling.
internal sealed partial class ClusterSupervisor
{
    private void StartReload(TaskCompletionSource<ControlResponse>? waiter, string source)
    {
        if (_reload is not null || IsPublishing)
        {
            // Joining the running pass would answer "reloaded" while some workers still run code started before
            // this request. One more pass afterwards keeps the rule: a reload that succeeds leaves every worker
            // on a generation started after it was asked for.
            _queuedReloads.Add((waiter, source));
            SupervisorLog.ReloadQueued(_logger, source, _reload?.ToGeneration ?? _publish?.Generation ?? _published!.Value.Publish.Generation);
            return;
        }

        BeginReloadPass(waiter is null ? [] : [waiter], source);
    }

    private void BeginReloadPass(IReadOnlyList<TaskCompletionSource<ControlResponse>> waiters, string source)
    {
        _systemd?.Notify($"RELOADING=1\nMONOTONIC_USEC={System.Diagnostics.Stopwatch.GetTimestamp() * 1_000_000 / System.Diagnostics.Stopwatch.Frequency}\nSTATUS=reloading to generation {Generation + 1}");
        if (_publisher is null)
        {
            StartReloadPass(waiters, source, _commands[Generation]);
        }
        else
        {
            // The pass starts once the new app is published (OnPublishCompleted).
            BeginPublish(waiters, source);
        }
    }

    private void StartReloadPass(IEnumerable<TaskCompletionSource<ControlResponse>> waiters, string source, WorkerCommand command)
    {
        var from = Generation;
        Generation++;
        _commands[Generation] = command;
        SupervisorLog.ReloadStarting(_logger, source, from, Generation);
        _reload = new ReloadOperation(from, Generation, new Queue<WorkerSlot>(_slots.Where(s => !s.Retiring)));
        _reload.Waiters.AddRange(waiters);
        ContinueReload();
    }

    private void ContinueReload()
    {
        var reload = _reload!;
        reload.Incoming = null;
        while (reload.Pending.TryDequeue(out var slot))
        {
            if (!_slots.Contains(slot) || slot.Retiring)
            {
                continue;
            }

            reload.Incoming = Spawn(slot.Id, reload.ToGeneration, out var failure);
            if (reload.Incoming is null)
            {
                FailReload($"cannot start worker {slot.Id} of generation {reload.ToGeneration}: {failure}");
            }

            return;
        }

        _reload = null;
        RemoveUnusedApps();
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

        StartQueuedReloads();
    }

    // Every reload asked for during the pass that just ended runs now, together, as one pass.
    private void StartQueuedReloads()
    {
        if (_stopPhase != StopPhase.None)
        {
            return;
        }

        if (_published is { } published)
        {
            // published while a memory recycle ran; reloads asked for since then stay queued behind it
            _published = null;
            StartReloadPass(published.Publish.Waiters, published.Publish.Source, published.Command);
            return;
        }

        if (_queuedReloads.Count == 0)
        {
            return;
        }

        var queued = _queuedReloads.ToList();
        _queuedReloads.Clear();
        BeginReloadPass([.. queued.Select(q => q.Waiter).OfType<TaskCompletionSource<ControlResponse>>()], string.Join(", ", queued.Select(q => q.Source).Distinct()));
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
        }
        else
        {
            // Slots not yet replaced keep serving the old generation; that is what restarts use too.
            Generation = reload.FromGeneration;
            SupervisorLog.ReloadFailed(_logger, reason, reload.FromGeneration);
            _systemd?.Notify($"READY=1\nSTATUS=reload failed; generation {reload.FromGeneration} serving");
            foreach (var waiter in reload.Waiters)
            {
                waiter.TrySetResult(ControlResponse.Failure($"reload failed: {reason}; the workers of generation {reload.FromGeneration} keep serving"));
            }
        }

        RemoveUnusedApps();
        StartQueuedReloads();
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
                slot.StartSoon(Now);
                _slots.Add(slot);
            }

            // A few at a time; the rest start as these become ready.
            StartDueWorkers();
        }
        else
        {
            foreach (var slot in active.Skip(workers))
            {
                slot.Retire();
                // --balance shared: its sockets take no new connection from here on; the queued ones go to the others.
                _listeners.RetireSlot(slot.Id);
                if (slot.Current is { } current)
                {
                    Drain(current);
                }
                else
                {
                    _listeners.SlotGone(slot.Id);
                    _slots.Remove(slot);
                }
            }
        }

        _announcedAllReady = false;
        if (waiter is not null)
        {
            // Workers start a few at a time, so a large scale-up gets a ready timeout per batch.
            var batches = Math.Max(1, (workers - active.Count + _maxConcurrentStarts - 1) / _maxConcurrentStarts);
            _scaleWaiters.Add((waiter, Now + (batches * (long)_options.ReadyTimeout.TotalMilliseconds) + 5_000));
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
