using System.Threading.Channels;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;
using KestrelCluster.Supervisor.Accept;
using KestrelCluster.Supervisor.Admin;
using KestrelCluster.Supervisor.Cli;
using KestrelCluster.Supervisor.Control;
using KestrelCluster.Supervisor.Distribution;
using KestrelCluster.Supervisor.Logging;
using KestrelCluster.Supervisor.Runtime;
using KestrelCluster.Supervisor.Systemd;
using KestrelCluster.Supervisor.Upgrade;
using KestrelCluster.Supervisor.Workers;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Supervisor.Hosting;

// The supervisor loop (gunicorn's arbiter): signals, child exits, channel events and timers only enqueue
// events; this one loop owns the workers' lifecycle state. The connection hot path (accept → dispatch →
// acknowledge) runs beside it under the dispatcher's lock. Processes start through an IWorkerLauncher and time
// comes from a clock, both injectable, so each lifecycle rule can be tested without real processes.
internal sealed partial class ClusterSupervisor : IWorkerSessionHandler, IDisposable
{
    private static readonly TimeSpan TickInterval = TimeSpan.FromMilliseconds(100);
    // How long a stop waits for accepted connections to reach a worker before it drains the workers.
    private static readonly TimeSpan SettleLimit = TimeSpan.FromSeconds(5);

    private readonly RunOptions _options;
    private readonly WorkerCommand _command;
    // The command each generation's workers run: with --project, each publish has its own folder.
    private readonly Dictionary<int, WorkerCommand> _commands = [];
    private readonly IAppPublisher? _publisher;
    private readonly IWorkerLauncher _launcher;
    private readonly Func<long> _clock;
    private readonly bool _manualTicks;
    // Workers starting at once, at most: a `scale 64` on two cores must not start 64 runtimes together.
    private readonly int _maxConcurrentStarts;
    private readonly ILogger _logger;
    private readonly TextWriter _errorOutput;
    private readonly Channel<SupervisorEvent> _events = Channel.CreateUnbounded<SupervisorEvent>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Dispatcher _dispatcher;
    private readonly ListenerRegistry _listeners;
    private readonly AcceptedHandler? _onAccepted;
    private readonly AffinityRouter _affinity;
    private bool _warnedAffinityUnavailable;
    private readonly RuntimeDirectory _runtimeDirectory;
    private readonly ChannelServer _channelServer;
    private readonly List<WorkerSlot> _slots;
    private readonly ControlServer _controlServer;
    private readonly List<TaskCompletionSource<ControlResponse>> _stopWaiters = [];
    private readonly List<(TaskCompletionSource<ControlResponse> Waiter, long Deadline)> _scaleWaiters = [];
    private ReloadOperation? _reload;
    // Reloads asked for while one runs: they run together as one more pass once it has finished.
    private readonly List<(TaskCompletionSource<ControlResponse>? Waiter, string Source)> _queuedReloads = [];
    private readonly ClusterMetrics _metrics;
    private AdminServer? _admin;
    // An upgrade's move of the admin port: the old supervisor letting it go, or the new one binding it.
    private Task _adminHandover = Task.CompletedTask;
    private readonly SystemdNotifier? _systemd = SystemdNotifier.FromEnvironment();
    private long _lastWatchdogAt;
    // Read by the admin endpoint's threads.
    private volatile bool _stopping;
    private volatile string? _failingSummary;
    private readonly List<WorkerInstance> _instances = [];
    private readonly HubRelay _hubRelay;
    private readonly Lock _admissionLock = new();
    private readonly List<WorkerInstance> _awaitingAdmission = [];
    private StopPhase _stopPhase;
    private long _stopPhaseStartedAt;
    private int _exitCode;
    private readonly long _startedAt;
    private long _lastSampleAt;
    private TimeSpan _selfCpu;
    private long _selfSampledAt;
    private bool _announcedAllReady;
    // Some worker has been ready: from then on no fault of one slot ends the run.
    private bool _hasServed;

    public ClusterSupervisor(
        RunOptions options,
        WorkerCommand command,
        RuntimeDirectory runtimeDirectory,
        ILogger logger,
        TextWriter workerOutput,
        TextWriter errorOutput,
        IWorkerLauncher? launcher = null,
        Func<long>? clock = null,
        bool manualTicks = false,
        int? maxConcurrentStarts = null,
        IAppPublisher? publisher = null,
        UpgradeHandover? handover = null)
    {
        _handover = handover;
        _runtimeDirectory = runtimeDirectory;
        Generation = handover?.Generation ?? 1;
        _options = options;
        _command = command;
        _commands[Generation] = command;
        _publisher = publisher;
        _logger = logger;
        _hubRelay = new HubRelay(logger);
        _errorOutput = errorOutput;
        _launcher = launcher ?? new ProcessWorkerLauncher(runtimeDirectory.ChannelSocketPath, options.Urls, workerOutput);
        _clock = clock ?? (() => Environment.TickCount64);
        _manualTicks = manualTicks;
        _maxConcurrentStarts = maxConcurrentStarts ?? Math.Max(1, Environment.ProcessorCount);
        _startedAt = _clock();
        _dispatcher = new Dispatcher(
            maxWait: options.ReadyTimeout,
            window: options.Balance == BalanceMode.Sticky ? Dispatcher.StickyWindow : Dispatcher.DefaultWindow,
            balance: options.Balance);
        _metrics = new ClusterMetrics(_dispatcher, prometheus: options.AdminUrls is not null);
        _affinity = new AffinityRouter(_dispatcher, clientKeys: options.Balance == BalanceMode.Sticky);
        _onAccepted = options.Balance switch
            {
                BalanceMode.Sticky => (fds, listener) =>
                {
                    _metrics.ConnectionsAccepted(fds.Length);
                    if (_affinity.IsOn)
                    {
                        _affinity.Route(fds, listener);
                        return;
                    }

                    Span<ulong> keys = stackalloc ulong[fds.Length];
                    for (var i = 0; i < fds.Length; i++)
                    {
                        keys[i] = ClientKey.Of(fds[i]);
                    }

                    _dispatcher.Dispatch(fds, listener.Id, keys);
                },
                _ => (fds, listener) =>
                {
                    _metrics.ConnectionsAccepted(fds.Length);
                    if (_affinity.IsOn)
                    {
                        _affinity.Route(fds, listener);
                        return;
                    }

                    _dispatcher.Dispatch(fds, listener.Id);
                },
            };
        _listeners = new ListenerRegistry(_onAccepted, OnAcceptError, workersAccept: options.Balance == BalanceMode.Shared, acceptThreads: options.AcceptThreads);
        _metrics.Listeners = _listeners.Snapshot;
        _metrics.Generation = () => Generation;
        _slots = Enumerable.Range(0, options.Workers).Select(i => new WorkerSlot(i, Generation)).ToList();
        _channelServer = new ChannelServer(runtimeDirectory.ChannelSocketPath, ClaimToken, OnAdmitted, OnRefused);
        _controlServer = new ControlServer(runtimeDirectory.ControlSocketPath, ExecuteAsync, OnRefused, runtimeDirectory.ControlGroup);
    }

    public int Generation { get; private set; } = 1;

    private long Now => _clock();

    public void RequestStop(string reason) => Post(new StopRequested(reason));

    public void RequestReload(string reason) => Post(new ControlCommand(new ControlRequest(ControlCommands.Reload), null, reason));

    /// <summary>Runs the periodic passes once (tests that drive the clock themselves).</summary>
    internal void TickNow() => Post(new Tick());

    /// <summary>The addresses the cluster listens on, as bound (port 0 resolved).</summary>
    public IReadOnlyList<string> ListenAddresses => [.. _listeners.Snapshot().Select(l => l.BoundText)];

    public async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        _channelServer.Start();
        _controlServer.Start();
        foreach (var (sockets, requested) in SystemdSockets.TakeGrouped())
        {
            SupervisorLog.AdoptedSocket(_logger, _listeners.Adopt(sockets, requested).BoundText);
        }

        AdoptHandedOverListeners();

        // After an upgrade the admin port is still the old supervisor's: it is bound at the takeover instead.
        if (_options.AdminUrls is { } adminUrls && _handover is null)
        {
            try
            {
                await StartAdminAsync(adminUrls, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or InvalidOperationException or System.Net.Sockets.SocketException or FormatException or UriFormatException)
            {
                _errorOutput.WriteLine($"kestrel-cluster: error: cannot serve --admin-urls {adminUrls}: {ex.Message}");
                return 1;
            }
        }

        if (_options.Affinity == AffinityMode.On && _affinity.TurnOn())
        {
            SupervisorLog.AffinityOn(_logger, "--affinity on");
        }

        SupervisorLog.Starting(_logger, _slots.Count, _command.AppName, _command.ToString());
        foreach (var slot in _slots)
        {
            slot.StartSoon(Now);
        }

        StartDueWorkers();

        using var ticker = new PeriodicTimer(TickInterval);
        if (!_manualTicks)
        {
            _ = Task.Run(async () =>
            {
                while (await ticker.WaitForNextTickAsync(CancellationToken.None).ConfigureAwait(false))
                {
                    Post(new Tick());
                }
            }, CancellationToken.None);
        }

        using var cancellation = cancellationToken.Register(() => RequestStop("cancelled"));

        await foreach (var @event in _events.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
        {
            try
            {
                Handle(@event);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // A bug in one event's handling must not take every worker down with the supervisor.
                SupervisorLog.EventFailed(_logger, @event.GetType().Name, ex);
            }

            if (_stopPhase == StopPhase.Done)
            {
                break;
            }
        }

        ticker.Dispose();
        await AbandonPublishAsync().ConfigureAwait(false);
        SupervisorLog.Stopped(_logger);
        foreach (var waiter in _stopWaiters)
        {
            // The pid lets `kestrel-cluster stop` wait until this process has really exited.
            waiter.TrySetResult(_exitCode == 0 ? ControlResponse.Success("stopped", supervisor: DescribeSupervisor()) : ControlResponse.Failure("stopped after an error"));
        }

        await _controlServer.FlushAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        await _adminHandover.ConfigureAwait(false);
        if (_admin is not null)
        {
            await _admin.DisposeAsync().ConfigureAwait(false);
        }

        return _exitCode;
    }

    // /healthz, /readyz and /metrics on --admin-urls (at start, or once an upgrade has taken over the port).
    private async Task StartAdminAsync(string adminUrls, CancellationToken cancellationToken)
    {
        _admin = await AdminServer.StartAsync(adminUrls, IsReady, FailingSummary, _metrics.ToPrometheusText, cancellationToken).ConfigureAwait(false);
        SupervisorLog.AdminListening(_logger, string.Join(", ", _admin.Addresses));
    }

    private void Handle(SupervisorEvent @event)
    {
        switch (@event)
        {
            case Tick:
                OnTick();
                break;
            case WorkerAdmitted admitted:
                OnWorkerAdmitted(admitted.Session);
                break;
            case WorkerBecameReady ready:
                OnWorkerReady(ready.Session);
                break;
            case WorkerChannelClosed closed:
                OnWorkerChannelClosed(closed.Session, closed.Violation);
                break;
            case WorkerExited exited:
                OnWorkerExited(exited.Instance, exited.ExitCode);
                break;
            case StopRequested stop:
                BeginStop(stop.Reason);
                break;
            case FatalError fatal:
                Fail(fatal.Message);
                break;
            case ControlCommand command:
                OnControlCommand(command);
                break;
            case WorkerMessage message:
                OnWorkerMessage(message);
                break;
            case PublishCompleted published:
                OnPublishCompleted(published.Result);
                break;
            case UpgradeReported upgrade:
                OnUpgradeReported(upgrade);
                break;
            case UpgradeTakeOver:
                OnUpgradeTakeOver();
                break;
        }
    }

    // Starts a worker for every slot that wants one now, a few at a time.
    private void StartDueWorkers()
    {
        if (_stopPhase != StopPhase.None)
        {
            return;
        }

        var now = Now;
        var starting = _instances.Count(i => i.State == WorkerState.Starting);
        foreach (var slot in _slots.OrderBy(s => s.Id).ToList())
        {
            if (starting >= _maxConcurrentStarts)
            {
                return;
            }

            if (!slot.WantsWorker(now) || _reload?.Incoming?.SlotId == slot.Id)
            {
                continue;
            }

            var instance = Spawn(slot.Id, slot.Generation, out var failure);
            if (instance is not null)
            {
                slot.Started(instance);
                starting++;
                continue;
            }

            if (!_hasServed)
            {
                // Nothing has ever served: this is a broken app or setup, not a local fault. Say so and stop.
                Fail($"cannot start worker {slot.Id}: {failure}");
                return;
            }

            var delay = slot.Failed(now, failure!, becameReady: false, servedMilliseconds: 0);
            _metrics.WorkerRestarted();
            SupervisorLog.WorkerSpawnFailed(_logger, slot.Id, failure!, (long)delay.TotalMilliseconds);
        }
    }

    private WorkerInstance? Spawn(int slotId, int generation, out string? failure)
    {
        var launch = new WorkerLaunch(slotId, generation, Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)), _commands[generation]);
        var instance = new WorkerInstance(launch, Now);
        try
        {
            instance.Attach(_launcher.Launch(launch, exitCode => Post(new WorkerExited(instance, exitCode))));
        }
        catch (WorkerStartException ex)
        {
            instance.Dispose();
            failure = ex.Message;
            return null;
        }

        lock (_admissionLock)
        {
            _awaitingAdmission.Add(instance);
        }

        _instances.Add(instance);
        SupervisorLog.WorkerStarted(_logger, slotId, instance.Pid, generation);
        failure = null;
        return instance;
    }

    private void OnWorkerAdmitted(WorkerSession session)
    {
        var instance = session.Instance;
        if (instance.HasExited || _stopPhase != StopPhase.None)
        {
            session.Close("the worker is no longer wanted");
            return;
        }

        instance.Session = session;
    }

    private void OnWorkerReady(WorkerSession session)
    {
        var instance = session.Instance;
        if (_stopPhase != StopPhase.None || !instance.MarkReady(Now))
        {
            return;
        }

        _hasServed = true;
        var slot = SlotOf(instance);
        if (slot is not null && slot.IsFailing)
        {
            SupervisorLog.SlotRecovered(_logger, slot.Id, slot.ConsecutiveFailures);
        }

        slot?.Ready();
        TurnOnAffinityIfNeeded(session);
        _dispatcher.AddReady(session);
        SupervisorLog.WorkerReady(_logger, instance.SlotId, instance.Pid, instance.Generation, instance.ReadyAt - instance.StartedAt);

        if (_reload?.Incoming == instance && slot is not null)
        {
            // The new generation serves before the old one drains: capacity never drops.
            var outgoing = slot.Current;
            slot.Started(instance);
            slot.Generation = instance.Generation;
            if (outgoing is not null && !outgoing.HasExited)
            {
                Drain(outgoing);
            }

            ContinueReload();
        }

        if (!_announcedAllReady && _slots.All(s => s.Current?.State == WorkerState.Ready))
        {
            _announcedAllReady = true;
            SupervisorLog.AllReady(_logger, _slots.Count);
            _systemd?.Notify($"READY=1\nSTATUS={_slots.Count} workers ready");
            OnAllReadyForUpgrade();
        }

        StartDueWorkers();
        CompleteScaleWaiters();
    }

    private void TurnOnAffinityIfNeeded(WorkerSession session)
    {
        if (_options.Affinity != AffinityMode.Auto || (session.Features & WorkerFeatures.RealTimeEndpoints) == 0)
        {
            return;
        }

        if (_options.Balance == BalanceMode.Shared)
        {
            if (!_warnedAffinityUnavailable)
            {
                _warnedAffinityUnavailable = true;
                SupervisorLog.AffinityUnavailable(_logger, session.Id);
            }

            return;
        }

        // Stays on for the run: a later generation without hubs is rare, and the cost is a peek per connection.
        if (_affinity.TurnOn())
        {
            SupervisorLog.AffinityOn(_logger, $"worker {session.Id} serves SignalR or Blazor Server endpoints");
        }
    }

    private WorkerSlot? SlotOf(WorkerInstance instance) => _slots.Find(s => s.Id == instance.SlotId);

    private void OnWorkerChannelClosed(WorkerSession session, bool violation)
    {
        var instance = session.Instance;
        if (violation)
        {
            // Killed before its connections go elsewhere, so none of them is served twice.
            instance.KillNow(Now);
        }
        else if (instance.State is WorkerState.Starting or WorkerState.Ready && !instance.HasExited)
        {
            // Without its channel a worker can neither get nor return connections: it is on its way out.
            // Give it the drain time to finish, then it is killed.
            instance.BeginDrain(Now);
        }

        var orphans = _dispatcher.Lost(session);
        if (orphans > 0)
        {
            SupervisorLog.ConnectionsRedispatched(_logger, instance.SlotId, orphans);
        }
    }

    private void OnWorkerExited(WorkerInstance instance, int exitCode)
    {
        HandleExit(instance, exitCode);
        RemoveUnusedApps();
    }

    private void HandleExit(WorkerInstance instance, int exitCode)
    {
        lock (_admissionLock)
        {
            _awaitingAdmission.Remove(instance);
        }

        instance.MarkExited(exitCode);
        _instances.Remove(instance);
        instance.Session?.Close("the process exited");
        var exit = WorkerInstance.DescribeExit(exitCode);
        var slot = SlotOf(instance);
        var neverJoined = instance.Session is null;
        var boundPortsItself = instance.BoundPortsItself;
        instance.Dispose();

        if (_reload?.Incoming == instance)
        {
            SupervisorLog.WorkerCrashed(_logger, instance.SlotId, instance.Pid, exit);
            FailReload($"worker {instance.SlotId} of generation {instance.Generation} exited before it became ready ({exit})");
            StartDueWorkers();
            return;
        }

        if (_stopPhase != StopPhase.None || slot is null || slot.Current != instance)
        {
            // drained, replaced or stopping: an expected exit
            SupervisorLog.WorkerExited(_logger, instance.SlotId, instance.Pid, exit);
            CompleteStopIfDone();
            StartDueWorkers();
            CompleteScaleWaiters();
            return;
        }

        if (slot.Retiring)
        {
            SupervisorLog.WorkerExited(_logger, instance.SlotId, instance.Pid, exit);
            _listeners.SlotGone(slot.Id);
            slot.Current = null;
            _slots.Remove(slot);
            StartDueWorkers();
            CompleteScaleWaiters();
            return;
        }

        SupervisorLog.WorkerCrashed(_logger, instance.SlotId, instance.Pid, exit);
        slot.BoundPortsItself |= boundPortsItself;
        var now = Now;
        var delay = slot.Failed(now, exit, instance.BecameReady, instance.BecameReady ? now - instance.ReadyAt : 0);
        _metrics.WorkerRestarted();
        if (!_hasServed && slot.FailuresBeforeReady >= WorkerSlot.MaxFailuresBeforeReady)
        {
            // Only a cluster that has never served gives up: a broken app at first start.
            Fail($"worker {slot.Id} exited before it became ready {slot.FailuresBeforeReady} times in a row (last: {exit}); giving up. "
                + (slot.BoundPortsItself ? BoundPortsItselfHint : neverJoined ? NeverJoinedHint : "Its output above says why."));
            return;
        }

        if (slot.ConsecutiveFailures > 1)
        {
            SupervisorLog.SlotFailing(_logger, slot.Id, slot.ConsecutiveFailures, exit, (long)delay.TotalMilliseconds);
        }
        else
        {
            SupervisorLog.WorkerRestarting(_logger, slot.Id, (long)delay.TotalMilliseconds);
        }

        StartDueWorkers();
    }

    // A worker without the transport binds its ports itself, beside the supervisor that owns them: "address already
    // in use", then a crash, reads like a port conflict. Usually the startup hook that adds the transport could not run.
    private const string BoundPortsItselfHint = "It never connected to the supervisor and bound its ports itself (\"address already in use\" above): "
        + "the app is not using the cluster transport. The startup hook that adds it does not run in NativeAOT or trimmed apps, or with "
        + "KESTREL_CLUSTER_STARTUP_HOOK=0: add `builder.WebHost.UseClusterTransport();` (package KestrelCluster.Transport) to the app.";

    private const string NeverJoinedHint = "It never connected to the supervisor: it failed before its host started (its output above says why), "
        + "or it does not use the cluster transport (a NativeAOT or trimmed app without `builder.WebHost.UseClusterTransport();`, or KESTREL_CLUSTER_STARTUP_HOOK=0).";

    private bool IsReady() => !_stopping && _dispatcher.ReadyTargets().Count > 0;

    // What /readyz adds to its answer: the slots that are failing, if any.
    private string? FailingSummary() => _failingSummary;

    private void OnTick()
    {
        var now = Now;
        PingWatchdog(now);
        PublishStatus();
        ForwardWaitingConnections();
        ExpireWaitingConnections();
        if (_stopPhase != StopPhase.None)
        {
            AdvanceStop(now);
            return;
        }

        StartDueWorkers();
        if (now - _lastSampleAt >= 1000)
        {
            _lastSampleAt = now;
            WatchWorkers(now);
        }

        ExpireScaleWaiters(now);
        EnforceDeadlines(now);
    }

    // Pinged from the loop itself: a supervisor whose loop hangs stops pinging and systemd restarts it.
    private void PingWatchdog(long now)
    {
        if (_systemd?.WatchdogInterval is { } interval && now - _lastWatchdogAt >= interval.TotalMilliseconds)
        {
            _lastWatchdogAt = now;
            _systemd.Notify("WATCHDOG=1");
        }
    }

    // For /metrics and /readyz, whose threads must not touch the loop's state.
    private void PublishStatus()
    {
        var rows = ListWorkers();
        _metrics.Publish([.. rows.Select(r => new WorkerMetrics(r.Id, r.Pid, r.Generation, r.State, r.OpenConnections, r.TotalConnections))]);
        var failing = _slots.Where(s => s.IsFailing).Select(s => $"worker {s.Id} ({s.LastFailure})").ToList();
        _failingSummary = failing.Count == 0 ? null : string.Join(", ", failing);
    }

    private void ExpireWaitingConnections()
    {
        var expired = _dispatcher.ExpireWaiting();
        if (expired > 0)
        {
            SupervisorLog.ConnectionsExpired(_logger, expired, _options.ReadyTimeout.TotalSeconds);
        }
    }

    private void ExpireScaleWaiters(long now)
    {
        for (var i = _scaleWaiters.Count - 1; i >= 0; i--)
        {
            if (_scaleWaiters[i].Deadline < now)
            {
                _scaleWaiters[i].Waiter.TrySetResult(ControlResponse.Failure($"not every worker was ready within {_options.ReadyTimeout.TotalSeconds} s"));
                _scaleWaiters.RemoveAt(i);
            }
        }
    }

    // A worker that does not become ready in time is killed (its slot backs off); a draining one gets its Stop
    // once it has acknowledged what it holds, and is killed when it is still running after --kill-timeout.
    private void EnforceDeadlines(long now)
    {
        foreach (var instance in _instances.ToList())
        {
            if (instance.IsPastReadyTimeout(now, _options.ReadyTimeout))
            {
                SupervisorLog.WorkerNotReady(_logger, instance.SlotId, instance.Pid, _options.ReadyTimeout.TotalSeconds);
                if (instance.Session is null)
                {
                    SupervisorLog.WorkerNeverJoined(_logger, instance.SlotId, instance.Pid, _options.ReadyTimeout.TotalSeconds);
                }

                if (_reload?.Incoming == instance)
                {
                    _reload.FailureReason = $"worker {instance.SlotId} of generation {instance.Generation} did not become ready within {_options.ReadyTimeout.TotalSeconds} s";
                }

                instance.KillNow(now);
            }
            else if (instance.State == WorkerState.Draining && !instance.StopSent)
            {
                SendStopWhenSettled(instance, now);
            }
            else if (instance.IsPastDrainTimeout(now, _options.KillTimeout))
            {
                SupervisorLog.WorkerKilled(_logger, instance.SlotId, instance.Pid, $"still running {_options.KillTimeout.TotalSeconds} s after it began to drain");
                instance.KillNow(now);
            }
        }
    }

    private void AdvanceStop(long now)
    {
        switch (_stopPhase)
        {
            case StopPhase.Settling when (_dispatcher.WaitingCount == 0 && _dispatcher.UnackedCount == 0) || now - _stopPhaseStartedAt > SettleLimit.TotalMilliseconds:
                DrainAll();
                break;
            case StopPhase.Draining when now - _stopPhaseStartedAt <= _options.KillTimeout.TotalMilliseconds:
                foreach (var instance in _instances.Where(i => !i.StopSent).ToList())
                {
                    SendStopWhenSettled(instance, now);
                }

                break;
            case StopPhase.Draining:
                foreach (var instance in _instances.Where(i => !i.HasExited).ToList())
                {
                    SupervisorLog.WorkerKilled(_logger, instance.SlotId, instance.Pid, $"still running {_options.KillTimeout.TotalSeconds} s after it was asked to stop");
                    instance.KillNow(now);
                }

                _stopPhase = StopPhase.Killing;
                _stopPhaseStartedAt = now;
                break;
            case StopPhase.Killing when now - _stopPhaseStartedAt > 5_000:
                // Processes that survive SIGKILL this long are beyond our reach; do not hang the stop.
                _stopPhase = StopPhase.Done;
                break;
        }
    }

    // Once a second: resources for `list`, hung workers (no Status frame for --heartbeat-timeout), and
    // workers above --max-memory, which are replaced through the reload path (successor ready first).
    private void WatchWorkers(long now)
    {
        foreach (var instance in _instances.ToList())
        {
            instance.SampleResources(now);
            if (instance.State != WorkerState.Ready || instance.Session is not { } session)
            {
                continue;
            }

            if (_options.HeartbeatTimeout > TimeSpan.Zero && now - session.LastStatusAt > _options.HeartbeatTimeout.TotalMilliseconds)
            {
                SupervisorLog.WorkerHung(_logger, instance.SlotId, instance.Pid, _options.HeartbeatTimeout.TotalSeconds);
                // Its connections go elsewhere from now on; what it holds unacknowledged is re-dispatched on exit.
                _dispatcher.StopDispatching(session);
                instance.KillNow(now);
                continue;
            }

            if (_options.MaxMemoryBytes is { } limit && instance.MemoryBytes > limit && _reload is null && SlotOf(instance) is { } slot && slot.Current == instance)
            {
                SupervisorLog.WorkerOverMemory(_logger, instance.SlotId, instance.Pid, instance.MemoryBytes >> 20, limit >> 20);
                _reload = new ReloadOperation(slot.Generation, slot.Generation, new Queue<WorkerSlot>([slot])) { IsRecycle = true };
                ContinueReload();
            }
        }
    }

    private WorkerInstance? ClaimToken(string token, Func<WorkerInstance, bool> isPeer)
    {
        lock (_admissionLock)
        {
            WorkerInstance? match = null;
            // Compare with every candidate, in constant time per comparison.
            foreach (var candidate in _awaitingAdmission)
            {
                if (ChannelServer.TokensEqual(candidate.Token, token))
                {
                    match = candidate;
                }
            }

            if (match is null || !isPeer(match))
            {
                return null;
            }

            _awaitingAdmission.Remove(match);
            return match;
        }
    }

    private void OnAdmitted(WorkerInstance instance, ChannelSocket socket, PeerCredentials peer)
    {
        var session = new WorkerSession(instance, socket, peer, _dispatcher, this, passListeningSockets: _options.Balance == BalanceMode.Shared, clock: _clock);
        try
        {
            session.SendWelcome();
        }
        catch (System.Net.Sockets.SocketException)
        {
            session.Close("the worker left before its welcome");
            return;
        }

        Post(new WorkerAdmitted(session));
        _hubRelay.Add(session);
        session.Start();
    }

    private void OnRefused(PeerCredentials? peer, string reason)
        => SupervisorLog.PeerRefused(_logger, peer?.ProcessId ?? 0, peer?.UserId ?? uint.MaxValue, reason);

    private void OnAcceptError(ClusterListener listener, int errno)
        => SupervisorLog.AcceptFailed(_logger, listener.BoundText, errno);

    BindOutcome IWorkerSessionHandler.Bind(WorkerSession session, string requested)
    {
        var outcome = _listeners.GetOrBind(requested, out var created);
        if (created)
        {
            SupervisorLog.Listening(_logger, outcome.Message);
            foreach (var handle in outcome.Listener!.AcceptHandles)
            {
                // The whole SO_REUSEPORT group: a socket of it closed by a crash would reset what was queued in it.
                _systemd?.StoreListener(requested, (int)handle);
            }

            if (outcome.Listener.AcceptThreads > 1)
            {
                SupervisorLog.AcceptingOnThreads(_logger, outcome.Message, outcome.Listener.AcceptThreads);
            }

            if (outcome.Listener?.Steering is { } steering)
            {
                SupervisorLog.SharedSteering(_logger, outcome.Message, steering);
            }
        }
        else if (outcome.Listener is null && outcome.Error is System.Net.Sockets.SocketError.AddressAlreadyInUse or System.Net.Sockets.SocketError.AccessDenied)
        {
            // Every worker would fail the same way: end the run with the reason instead of a crash loop.
            Post(new FatalError(outcome.Message));
        }

        return outcome;
    }

    void IWorkerSessionHandler.Ready(WorkerSession session) => Post(new WorkerBecameReady(session));

    void IWorkerSessionHandler.Message(WorkerSession session, int target, byte[] json) => Post(new WorkerMessage(session, target, json));

    void IWorkerSessionHandler.RelayHub(WorkerSession session, int target, ReadOnlySpan<byte> payload) => _hubRelay.Relay(session, target, payload);

    void IWorkerSessionHandler.Closed(WorkerSession session, string reason, bool violation)
    {
        _hubRelay.Remove(session);
        if (violation)
        {
            SupervisorLog.WorkerProtocolViolation(_logger, session.Instance.SlotId, session.Instance.Pid, reason);
        }

        Post(new WorkerChannelClosed(session, reason, violation));
    }

    private void Post(SupervisorEvent @event) => _events.Writer.TryWrite(@event);

    public void Dispose()
    {
        _publishCancellation.Cancel();
        _publishCancellation.Dispose();
        _systemd?.Dispose();
        _upgrade?.Dispose();
        _handover?.Dispose();
        _metrics.Dispose();
        if (_upgrade is { HasTakenOver: true })
        {
            // Its path names the new supervisor's control socket now, and disposing ours would unlink it.
            HandedOverSockets.Keep(_controlServer);
        }
        else
        {
            _controlServer.Dispose();
        }

        _channelServer.Dispose();
        _listeners.Dispose();
        _dispatcher.Close();
        foreach (var instance in _instances)
        {
            instance.Kill();
            instance.Dispose();
        }
    }

    private enum StopPhase
    {
        None,
        // not accepting; waiting for accepted connections to reach a worker
        Settling,
        // workers asked to stop; waiting up to --kill-timeout
        Draining,
        // survivors killed; waiting for their exit
        Killing,
        Done,
    }
}
