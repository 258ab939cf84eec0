using System.Threading.Channels;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;
using KestrelCluster.Supervisor.Accept;
using KestrelCluster.Supervisor.Admin;
using KestrelCluster.Supervisor.Cli;
using KestrelCluster.Supervisor.Control;
using KestrelCluster.Supervisor.Distribution;
using KestrelCluster.Supervisor.Workers;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Supervisor.Hosting;

// The supervisor loop (gunicorn's arbiter): signals, child exits, channel events and timers only enqueue
// events; this one loop owns the workers' lifecycle state. The connection hot path (accept → dispatch →
// acknowledge) runs beside it under the dispatcher's lock.
internal sealed partial class ClusterSupervisor : IWorkerSessionHandler, IDisposable
{
    // A slot whose worker exits this many times in a row before it is ever ready ends the run.
    internal const int MaxFailuresBeforeReady = 5;
    private static readonly TimeSpan TickInterval = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);
    // A worker that stayed up this long is healthy again: its next crash restarts at once.
    private static readonly TimeSpan StableUptime = TimeSpan.FromSeconds(30);
    // How long a stop waits for accepted connections to reach a worker before it drains the workers.
    private static readonly TimeSpan SettleLimit = TimeSpan.FromSeconds(5);

    private readonly RunOptions _options;
    private readonly WorkerCommand _command;
    private readonly RuntimeDirectory _runtimeDirectory;
    private readonly ILogger _logger;
    private readonly TextWriter _workerOutput;
    private readonly TextWriter _errorOutput;
    private readonly Channel<SupervisorEvent> _events = Channel.CreateUnbounded<SupervisorEvent>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Dispatcher _dispatcher;
    private readonly ListenerRegistry _listeners;
    private readonly ChannelServer _channelServer;
    private readonly List<WorkerSlot> _slots;
    private readonly ControlServer _controlServer;
    private readonly List<TaskCompletionSource<ControlResponse>> _stopWaiters = [];
    private readonly List<(TaskCompletionSource<ControlResponse> Waiter, long Deadline)> _scaleWaiters = [];
    private ReloadOperation? _reload;
    private readonly ClusterMetrics _metrics;
    private AdminServer? _admin;
    private readonly SystemdNotifier? _systemd = SystemdNotifier.FromEnvironment();
    private long _lastWatchdogAt;
    // Read by the admin endpoint's threads.
    private volatile bool _stopping;
    private readonly List<(TaskCompletionSource<ControlResponse>? Waiter, string Source)> _reloadAfterRecycle = [];
    private readonly List<WorkerInstance> _instances = [];
    private readonly Lock _admissionLock = new();
    private readonly List<WorkerInstance> _awaitingAdmission = [];
    private StopPhase _stopPhase;
    private long _stopPhaseStartedAt;
    private int _exitCode;
    private readonly long _startedAt = Environment.TickCount64;
    private long _lastSampleAt;
    private TimeSpan _selfCpu;
    private long _selfSampledAt;
    private bool _announcedAllReady;

    public ClusterSupervisor(RunOptions options, WorkerCommand command, RuntimeDirectory runtimeDirectory, ILogger logger, TextWriter workerOutput, TextWriter errorOutput)
    {
        _options = options;
        _command = command;
        _runtimeDirectory = runtimeDirectory;
        _logger = logger;
        _workerOutput = workerOutput;
        _errorOutput = errorOutput;
        _dispatcher = new Dispatcher(
            maxWait: options.ReadyTimeout,
            window: options.Balance == BalanceMode.Sticky ? Dispatcher.StickyWindow : Dispatcher.DefaultWindow,
            balance: options.Balance);
        _metrics = new ClusterMetrics(_dispatcher);
        _listeners = new ListenerRegistry(
            options.Balance switch
            {
                BalanceMode.Shared => null,
                BalanceMode.Sticky => (fds, listener) =>
                {
                    _metrics.ConnectionsAccepted(fds.Length);
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
                    _dispatcher.Dispatch(fds, listener.Id);
                },
            },
            OnAcceptError);
        _slots = Enumerable.Range(0, options.Workers).Select(i => new WorkerSlot(i, Generation)).ToList();
        _channelServer = new ChannelServer(runtimeDirectory.ChannelSocketPath, ClaimToken, OnAdmitted, OnRefused);
        _controlServer = new ControlServer(runtimeDirectory.ControlSocketPath, ExecuteAsync, OnRefused, runtimeDirectory.ControlGroup);
    }

    public int Generation { get; private set; } = 1;

    public void RequestStop(string reason) => Post(new StopRequested(reason));

    public void RequestReload(string reason) => Post(new ControlCommand(new ControlRequest(ControlCommands.Reload), null, reason));

    /// <summary>The addresses the cluster listens on, as bound (port 0 resolved).</summary>
    public IReadOnlyList<string> ListenAddresses => [.. _listeners.Snapshot().Select(l => l.BoundText)];

    public async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        _channelServer.Start();
        _controlServer.Start();
        foreach (var socket in SystemdSockets.Take())
        {
            SupervisorLog.AdoptedSocket(_logger, _listeners.Adopt(socket).BoundText);
        }

        if (_options.AdminUrls is { } adminUrls)
        {
            try
            {
                _admin = await AdminServer.StartAsync(adminUrls, IsReady, () => _metrics.ToPrometheusText(Generation), cancellationToken).ConfigureAwait(false);
                SupervisorLog.AdminListening(_logger, string.Join(", ", _admin.Addresses));
            }
            catch (Exception ex) when (ex is IOException or InvalidOperationException or System.Net.Sockets.SocketException or FormatException or UriFormatException)
            {
                _errorOutput.WriteLine($"kestrel-cluster: error: cannot serve --admin-urls {adminUrls}: {ex.Message}");
                return 1;
            }
        }

        SupervisorLog.Starting(_logger, _slots.Count, _command.AppName, _command.ToString());
        foreach (var slot in _slots)
        {
            StartWorker(slot);
            if (_stopPhase != StopPhase.None)
            {
                break;
            }
        }

        using var ticker = new PeriodicTimer(TickInterval);
        _ = Task.Run(async () =>
        {
            while (await ticker.WaitForNextTickAsync(CancellationToken.None).ConfigureAwait(false))
            {
                Post(new Tick());
            }
        }, CancellationToken.None);
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
        SupervisorLog.Stopped(_logger);
        foreach (var waiter in _stopWaiters)
        {
            waiter.TrySetResult(_exitCode == 0 ? ControlResponse.Success("stopped") : ControlResponse.Failure("stopped after an error"));
        }

        await _controlServer.FlushAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        if (_admin is not null)
        {
            await _admin.DisposeAsync().ConfigureAwait(false);
        }

        return _exitCode;
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
                OnWorkerChannelClosed(closed.Session, closed.Reason, closed.Violation);
                break;
            case WorkerExited exited:
                OnWorkerExited(exited.Instance);
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
        }
    }

    private void StartWorker(WorkerSlot slot)
    {
        slot.RestartAt = null;
        slot.Current = Spawn(slot, slot.Generation);
    }

    private WorkerInstance? Spawn(WorkerSlot slot, int generation)
    {
        WorkerInstance instance;
        try
        {
            instance = WorkerInstance.Start(_command, slot.Id, generation, _runtimeDirectory.ChannelSocketPath, _options.Urls, _workerOutput,
                exited => Post(new WorkerExited(exited)));
        }
        catch (WorkerStartException ex)
        {
            Fail(ex.Message);
            return null;
        }

        lock (_admissionLock)
        {
            _awaitingAdmission.Add(instance);
        }

        _instances.Add(instance);
        SupervisorLog.WorkerStarted(_logger, slot.Id, instance.Pid, instance.Generation);
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
        if (instance.State != WorkerState.Starting || _stopPhase != StopPhase.None)
        {
            return;
        }

        instance.State = WorkerState.Ready;
        instance.BecameReady = true;
        instance.ReadyAt = Environment.TickCount64;
        var slot = SlotOf(instance);
        if (slot is not null)
        {
            slot.FailuresBeforeReady = 0;
        }

        _dispatcher.AddReady(session);
        SupervisorLog.WorkerReady(_logger, instance.SlotId, instance.Pid, instance.Generation, instance.ReadyAt - instance.StartedAt);

        if (_reload?.Incoming == instance && slot is not null)
        {
            // The new generation serves before the old one drains: capacity never drops.
            var outgoing = slot.Current;
            slot.Current = instance;
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
        }

        CompleteScaleWaiters();
    }

    private WorkerSlot? SlotOf(WorkerInstance instance) => _slots.Find(s => s.Id == instance.SlotId);

    private void OnWorkerChannelClosed(WorkerSession session, string reason, bool violation)
    {
        var instance = session.Instance;
        if (instance.State is WorkerState.Starting or WorkerState.Ready && !instance.HasExited)
        {
            // Without its channel a worker can neither get nor return connections: it is on its way out
            // (or was killed for a violation). Give it the drain time to finish, then it is killed.
            instance.State = WorkerState.Draining;
            instance.DrainStartedAt = Environment.TickCount64;
        }
    }

    private void OnWorkerExited(WorkerInstance instance)
    {
        lock (_admissionLock)
        {
            _awaitingAdmission.Remove(instance);
        }

        instance.State = WorkerState.Exited;
        _instances.Remove(instance);
        instance.Session?.Close("the process exited");
        var exit = WorkerInstance.DescribeExit(instance.ExitCode ?? -1);
        var slot = SlotOf(instance);
        instance.Dispose();

        if (_reload?.Incoming == instance)
        {
            SupervisorLog.WorkerCrashed(_logger, instance.SlotId, instance.Pid, exit);
            FailReload($"worker {instance.SlotId} of generation {instance.Generation} exited before it became ready ({exit})");
            return;
        }

        if (_stopPhase != StopPhase.None || slot is null || slot.Current != instance)
        {
            // drained, replaced or stopping: an expected exit
            SupervisorLog.WorkerExited(_logger, instance.SlotId, instance.Pid, exit);
            CompleteStopIfDone();
            CompleteScaleWaiters();
            return;
        }

        slot.Current = null;
        if (slot.Retiring)
        {
            SupervisorLog.WorkerExited(_logger, instance.SlotId, instance.Pid, exit);
            _slots.Remove(slot);
            CompleteScaleWaiters();
            return;
        }

        SupervisorLog.WorkerCrashed(_logger, instance.SlotId, instance.Pid, exit);
        if (!instance.BecameReady)
        {
            slot.FailuresBeforeReady++;
            if (slot.FailuresBeforeReady >= MaxFailuresBeforeReady)
            {
                Fail($"worker {slot.Id} exited before it became ready {slot.FailuresBeforeReady} times in a row (last: {exit}); giving up. Its output above says why.");
                return;
            }
        }

        var uptime = TimeSpan.FromMilliseconds(Environment.TickCount64 - instance.StartedAt);
        slot.ConsecutiveCrashes = uptime >= StableUptime ? 1 : slot.ConsecutiveCrashes + 1;
        slot.Restarts++;
        _metrics.WorkerRestarted();
        var delay = BackoffFor(slot.ConsecutiveCrashes);
        SupervisorLog.WorkerRestarting(_logger, slot.Id, (long)delay.TotalMilliseconds);
        if (delay == TimeSpan.Zero)
        {
            StartWorker(slot);
        }
        else
        {
            slot.RestartAt = Environment.TickCount64 + (long)delay.TotalMilliseconds;
        }
    }

    // 0 for the first crash, then 250 ms doubling up to 30 s.
    internal static TimeSpan BackoffFor(int consecutiveCrashes)
    {
        if (consecutiveCrashes <= 1)
        {
            return TimeSpan.Zero;
        }

        var factor = Math.Pow(2, Math.Min(consecutiveCrashes - 2, 16));
        return TimeSpan.FromMilliseconds(Math.Min(FirstBackoff.TotalMilliseconds * factor, MaxBackoff.TotalMilliseconds));
    }

    private bool IsReady() => !_stopping && _dispatcher.ReadyTargets().Count > 0;

    private void OnTick()
    {
        var now = Environment.TickCount64;
        // Pinged from the loop itself: a supervisor whose loop hangs stops pinging and systemd restarts it.
        if (_systemd?.WatchdogInterval is { } interval && now - _lastWatchdogAt >= interval.TotalMilliseconds)
        {
            _lastWatchdogAt = now;
            _systemd.Notify("WATCHDOG=1");
        }

        _metrics.Publish(_instances.Select(i => new WorkerMetrics(i.SlotId, i.Pid, i.Generation, i.State.ToString().ToLowerInvariant(), i.Session?.OpenConnections ?? 0, i.Session?.Accepted ?? 0, SlotOf(i)?.Restarts ?? 0)).ToList());
        var expired = _dispatcher.ExpireWaiting();
        if (expired > 0)
        {
            SupervisorLog.ConnectionsExpired(_logger, expired, _options.ReadyTimeout.TotalSeconds);
        }

        if (_stopPhase == StopPhase.None)
        {
            foreach (var slot in _slots)
            {
                if (slot.RestartAt is { } due && due <= now)
                {
                    StartWorker(slot);
                }
            }

            if (now - _lastSampleAt >= 1000)
            {
                _lastSampleAt = now;
                WatchWorkers(now);
            }

            for (var i = _scaleWaiters.Count - 1; i >= 0; i--)
            {
                if (_scaleWaiters[i].Deadline < now)
                {
                    _scaleWaiters[i].Waiter.TrySetResult(ControlResponse.Failure($"not every worker was ready within {_options.ReadyTimeout.TotalSeconds} s"));
                    _scaleWaiters.RemoveAt(i);
                }
            }

            foreach (var instance in _instances.ToList())
            {
                if (instance.State == WorkerState.Starting && now - instance.StartedAt > _options.ReadyTimeout.TotalMilliseconds)
                {
                    SupervisorLog.WorkerNotReady(_logger, instance.SlotId, instance.Pid, _options.ReadyTimeout.TotalSeconds);
                    if (_reload?.Incoming == instance)
                    {
                        _reload.FailureReason = $"worker {instance.SlotId} of generation {instance.Generation} did not become ready within {_options.ReadyTimeout.TotalSeconds} s";
                    }

                    instance.State = WorkerState.Draining;
                    instance.DrainStartedAt = now;
                    instance.Kill();
                }
                else if (instance.State == WorkerState.Draining && !instance.StopSent)
                {
                    SendStopWhenSettled(instance, now);
                }
                else if (instance.State == WorkerState.Draining && now - instance.DrainStartedAt > _options.KillTimeout.TotalMilliseconds)
                {
                    SupervisorLog.WorkerKilled(_logger, instance.SlotId, instance.Pid, $"still running {_options.KillTimeout.TotalSeconds} s after it began to drain");
                    instance.DrainStartedAt = long.MaxValue / 2;
                    instance.Kill();
                }
            }

            return;
        }

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
                    instance.Kill();
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
                instance.State = WorkerState.Draining;
                instance.DrainStartedAt = now;
                instance.StopSent = true;
                instance.Kill();
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
        var session = new WorkerSession(instance, socket, peer, _dispatcher, this, passListeningSockets: _options.Balance == BalanceMode.Shared);
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

    void IWorkerSessionHandler.Closed(WorkerSession session, string reason, bool violation)
    {
        if (violation)
        {
            SupervisorLog.WorkerProtocolViolation(_logger, session.Instance.SlotId, session.Instance.Pid, reason);
            session.Instance.Kill();
        }
        else
        {
            var orphans = session.Unacked.Count;
            if (orphans > 0)
            {
                SupervisorLog.ConnectionsRedispatched(_logger, session.Instance.SlotId, orphans);
            }
        }

        Post(new WorkerChannelClosed(session, reason, violation));
    }

    private void Post(SupervisorEvent @event) => _events.Writer.TryWrite(@event);

    public void Dispose()
    {
        _systemd?.Dispose();
        _metrics.Dispose();
        _controlServer.Dispose();
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
