using KestrelCluster.Protocol;
using KestrelCluster.Supervisor.Cli;
using KestrelCluster.Supervisor.Control;
using KestrelCluster.Supervisor.Logging;
using KestrelCluster.Supervisor.Workers;

namespace KestrelCluster.Supervisor.Hosting;

// Control-socket commands (list, send, stop…) and messages between workers.
internal sealed partial class ClusterSupervisor
{
    // The control socket's path, also taken by an in-process host (ClusterHost).
    public Task<ControlResponse> ExecuteAsync(ControlRequest request)
    {
        var waiter = new TaskCompletionSource<ControlResponse>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(new ControlCommand(request, waiter, "control socket"));
        return waiter.Task;
    }

    private void OnControlCommand(ControlCommand command)
    {
        var request = command.Request;
        var waiter = command.Waiter;
        if (_stopPhase != StopPhase.None && request.Command != ControlCommands.List)
        {
            if (request.Command == ControlCommands.Stop && waiter is not null)
            {
                _stopWaiters.Add(waiter);
                return;
            }

            waiter?.TrySetResult(ControlResponse.Failure("the cluster is stopping"));
            return;
        }

        switch (request.Command)
        {
            case ControlCommands.List:
                waiter?.TrySetResult(ControlResponse.Success($"{_slots.Count} workers, generation {Generation}", ListWorkers(), DescribeSupervisor()));
                break;
            case ControlCommands.Stop:
                if (waiter is not null)
                {
                    _stopWaiters.Add(waiter);
                }

                BeginStop("stop command");
                break;
            case ControlCommands.Reload:
                StartReload(waiter, command.Source);
                break;
            case ControlCommands.Scale when request.Workers is >= 1 and <= CommandLine.MaxWorkers:
                Scale(request.Workers.Value, waiter);
                break;
            case ControlCommands.Send:
                waiter?.TrySetResult(SendFromCli(request));
                break;
            case ControlCommands.Upgrade:
                StartUpgrade(request, waiter, command.Source);
                break;
            case ControlCommands.Scale:
                waiter?.TrySetResult(ControlResponse.Failure($"scale needs a number of workers from 1 to {CommandLine.MaxWorkers}"));
                break;
            default:
                waiter?.TrySetResult(ControlResponse.Failure($"unknown command '{request.Command}'"));
                break;
        }
    }

    // One row per worker process, and one per slot that has none running (failing and waiting to retry, or
    // waiting for its turn to start).
    private IReadOnlyList<WorkerRow> ListWorkers()
    {
        // Runs every tick for the metrics: linear in slots and workers, however many there are.
        var now = Now;
        var slots = _slots.ToDictionary(s => s.Id);
        var starting = new HashSet<int>();
        var rows = new List<WorkerRow>(_instances.Count + _slots.Count);
        foreach (var i in _instances)
        {
            var slot = slots.GetValueOrDefault(i.SlotId);
            if (i.State == WorkerState.Starting)
            {
                starting.Add(i.SlotId);
            }

            var state = slot is { IsFailing: true } && slot.Current == i && i.State == WorkerState.Starting ? "failing" : i.State.ToString().ToLowerInvariant();
            rows.Add(new WorkerRow(
                i.SlotId,
                i.Pid,
                i.Generation,
                state,
                Math.Round((now - i.StartedAt) / 1000.0, 1),
                slot?.Restarts ?? 0,
                i.Session?.OpenConnections ?? 0,
                i.Session?.Accepted ?? 0,
                i.CpuPercent,
                i.MemoryBytes));
        }

        foreach (var s in _slots.Where(s => s.Current is null && !s.Retiring && !starting.Contains(s.Id)))
        {
            rows.Add(new WorkerRow(s.Id, 0, s.Generation, s.IsFailing ? "failing" : "pending", 0, s.Restarts, 0, 0, 0, 0));
        }

        return [.. rows.OrderBy(r => r.Id).ThenBy(r => r.Generation)];
    }

    private SupervisorRow DescribeSupervisor()
    {
        using var self = System.Diagnostics.Process.GetCurrentProcess();
        var now = Now;
        var cpu = self.TotalProcessorTime;
        var percent = _selfSampledAt != 0 && now > _selfSampledAt ? (cpu - _selfCpu).TotalMilliseconds * 100 / (now - _selfSampledAt) : 0;
        (_selfCpu, _selfSampledAt) = (cpu, now);
        return new SupervisorRow(Environment.ProcessId, Math.Round((now - _startedAt) / 1000.0, 1), Math.Round(percent, 1), self.WorkingSet64, Generation, _options.Balance.ToString());
    }

    private void OnWorkerMessage(WorkerMessage message)
    {
        var sender = message.Session.Instance;
        if (message.Target == MessageTargets.Supervisor)
        {
            SupervisorLog.MessageFromWorker(_logger, sender.SlotId, sender.Pid, System.Text.Encoding.UTF8.GetString(message.Json));
            return;
        }

        Deliver(_instances.Where(i => i != sender), sender.SlotId, message.Json);
    }

    // Sends without waiting: a worker whose channel is full (frozen, or not reading) misses the message
    // rather than stalling the supervisor.
    private int Deliver(IEnumerable<WorkerInstance> recipients, int sender, byte[] json)
    {
        var delivered = 0;
        foreach (var instance in recipients.ToList())
        {
            if (instance.Session is not { } session || instance.State == WorkerState.Exited)
            {
                continue;
            }

            if (session.SendMessage(sender, json))
            {
                delivered++;
            }
            else
            {
                SupervisorLog.MessageDropped(_logger, instance.SlotId, instance.Pid);
            }
        }

        return delivered;
    }

    private ControlResponse SendFromCli(ControlRequest request)
    {
        if (request.Payload is null || request.Target is null)
        {
            return ControlResponse.Failure("send needs a target (a worker id or 'all') and a JSON message");
        }

        byte[] json;
        try
        {
            // Re-written compact; WriteTo needs no reflection (the supervisor is published NativeAOT too).
            using var document = System.Text.Json.JsonDocument.Parse(request.Payload);
            var compact = new System.Buffers.ArrayBufferWriter<byte>();
            using (var writer = new System.Text.Json.Utf8JsonWriter(compact))
            {
                document.RootElement.WriteTo(writer);
            }

            json = compact.WrittenSpan.ToArray();
        }
        catch (System.Text.Json.JsonException ex)
        {
            return ControlResponse.Failure($"the message is not valid JSON: {ex.Message}");
        }

        var live = _slots.Where(s => s.Current is { State: WorkerState.Ready or WorkerState.Starting }).Select(s => s.Current!).ToList();
        if (request.Target != "all")
        {
            if (!int.TryParse(request.Target, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id) || live.All(i => i.SlotId != id))
            {
                return ControlResponse.Failure($"no worker {request.Target} (workers: {string.Join(", ", live.Select(i => i.SlotId).Order())})");
            }

            live = live.Where(i => i.SlotId == id).ToList();
        }

        var delivered = Deliver(live, MessageTargets.Supervisor, json);
        return delivered == live.Count
            ? ControlResponse.Success($"sent to {delivered} worker{(delivered == 1 ? "" : "s")}")
            : ControlResponse.Failure($"sent to {delivered} of {live.Count} workers; the others were not reachable");
    }
}
