using KestrelCluster.Supervisor.Control;
using KestrelCluster.Supervisor.Logging;
using KestrelCluster.Supervisor.Workers;

namespace KestrelCluster.Supervisor.Hosting;

// --project: a reload publishes the app first. The publish runs beside the loop and comes back as an event, so the
// loop keeps serving (list, crashes, connections) meanwhile; a failed publish refuses the reload. Each generation
// runs from its own folder, removed once no worker of that generation runs any more.
internal sealed partial class ClusterSupervisor
{
    private readonly CancellationTokenSource _publishCancellation = new();
    // The publish running for the next reload pass, if any; one at a time.
    private PendingPublish? _publish;
    private Task _publishTask = Task.CompletedTask;
    // A publish that finished while a memory recycle ran: its pass starts when the recycle ends.
    private (PendingPublish Publish, WorkerCommand Command)? _published;

    private bool IsPublishing => _publish is not null || _published is not null;

    private void BeginPublish(IReadOnlyList<TaskCompletionSource<ControlResponse>> waiters, string source)
    {
        var publisher = _publisher!;
        var publish = new PendingPublish(waiters, source, Generation + 1, Now);
        _publish = publish;
        SupervisorLog.PublishStarting(_logger, publisher.Source, publish.Generation, source);
        var cancellation = _publishCancellation.Token;
        _publishTask = Task.Run(async () =>
        {
            PublishResult result;
            try
            {
                result = await publisher.PublishAsync(publish.Generation, cancellation).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // the cluster is stopping; its waiters have had their answer
                return;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // Whatever went wrong, the reload must get an answer.
                result = PublishResult.Failed(ex.Message);
            }

            Post(new PublishCompleted(result));
        }, CancellationToken.None);
    }

    private void OnPublishCompleted(PublishResult result)
    {
        var publish = _publish;
        _publish = null;
        if (publish is null || _stopPhase != StopPhase.None)
        {
            DeleteApp(result.Command, publish?.Generation ?? 0);
            return;
        }

        if (result.Command is not { } command)
        {
            var error = result.Error ?? "unknown error";
            SupervisorLog.PublishFailed(_logger, _publisher!.Source, error, Generation);
            _systemd?.Notify($"READY=1\nSTATUS=reload refused (the build failed); generation {Generation} serving");
            foreach (var waiter in publish.Waiters)
            {
                waiter.TrySetResult(ControlResponse.Failure($"reload refused: the build of {_publisher.Source} failed: {error}; the workers of generation {Generation} keep serving"));
            }

            StartQueuedReloads();
            return;
        }

        SupervisorLog.Published(_logger, publish.Generation, Now - publish.StartedAt, command.PublishFolder ?? command.WorkingDirectory);
        if (_reload is not null)
        {
            _published = (publish, command);
            return;
        }

        StartReloadPass(publish.Waiters, publish.Source, command);
    }

    // A generation's app goes once no slot, reload or worker (a draining one included) uses that generation.
    private void RemoveUnusedApps()
    {
        foreach (var (generation, command) in _commands.ToList())
        {
            if (generation == Generation || _reload?.ToGeneration == generation || _slots.Any(s => s.Generation == generation) || _instances.Any(i => i.Generation == generation))
            {
                continue;
            }

            _commands.Remove(generation);
            if (!_commands.ContainsValue(command))
            {
                DeleteApp(command, generation);
            }
        }
    }

    // Off the loop: removing a large app's folder takes a while.
    private void DeleteApp(WorkerCommand? command, int generation)
    {
        if (_publisher is not { } publisher || command?.PublishFolder is not { } folder)
        {
            return;
        }

        _ = Task.Run(() =>
        {
            try
            {
                publisher.Delete(command);
                SupervisorLog.PublishRemoved(_logger, generation, folder);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                SupervisorLog.PublishRemoveFailed(_logger, generation, folder, ex.Message);
            }
        }, CancellationToken.None);
    }

    // Stopping: a publish in progress is cancelled (its build killed) and waited for, so its folder can go.
    private async Task AbandonPublishAsync()
    {
        await _publishCancellation.CancelAsync().ConfigureAwait(false);
        try
        {
            await _publishTask.WaitAsync(TimeSpan.FromSeconds(15)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // the folder is removed with the runtime folder as far as it can be
        }
    }
}
