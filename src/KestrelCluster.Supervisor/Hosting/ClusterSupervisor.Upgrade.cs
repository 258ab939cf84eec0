using KestrelCluster.Protocol;
using KestrelCluster.Supervisor.Control;
using KestrelCluster.Supervisor.Logging;
using KestrelCluster.Supervisor.Upgrade;

namespace KestrelCluster.Supervisor.Hosting;

// Upgrading the supervisor itself without closing a port (`kestrel-cluster upgrade`, SIGUSR2). The running one
// starts the new one and hands it the listening sockets; the new one starts its workers; once they are ready it
// accepts and takes the control socket, and the old one stops accepting, hands over what it accepted but did not
// dispatch, drains its workers and exits. Connections arriving meanwhile wait in the kernel's backlog.
internal sealed partial class ClusterSupervisor
{
    // In a container the supervisor is often PID 1: its exit ends the container, whatever it started.
    private const string Pid1Refusal = "the supervisor runs as PID 1 (a container's init): its exit would end the container. "
        + "Roll the container instead (Kubernetes: a rolling update of the pods, e.g. kubectl rollout restart).";

    private static readonly TimeSpan AdminTakeOverLimit = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan AdminRetryInterval = TimeSpan.FromMilliseconds(50);

    // Old side: the upgrade in progress, and who waits for its outcome.
    private SupervisorUpgrade? _upgrade;
    private readonly List<TaskCompletionSource<ControlResponse>> _upgradeWaiters = [];

    // New side: the connection to the supervisor this one replaces (null unless an upgrade started us).
    private readonly UpgradeHandover? _handover;
    private bool _tookOver;

    public void RequestUpgrade(string reason) => Post(new ControlCommand(new ControlRequest(ControlCommands.Upgrade), null, reason));

    // Time the new supervisor has to start its workers: a publish of a --project app, then --ready-timeout and more.
    private TimeSpan UpgradeReadyLimit => TimeSpan.FromTicks(_options.ReadyTimeout.Ticks * 3) + TimeSpan.FromMinutes(_publisher is null ? 0.5 : 5);

    private void StartUpgrade(ControlRequest request, TaskCompletionSource<ControlResponse>? waiter, string source)
    {
        var refusal = Environment.ProcessId == 1 ? Pid1Refusal
            : _upgrade is not null ? $"an upgrade (to pid {_upgrade.Pid}) is already running"
            : _handover is not null && !_tookOver ? "this supervisor is still taking over from the one it replaces"
            : _reload is not null || _publish is not null || _published is not null ? "a reload is running; upgrade once it has finished"
            : _listeners.Snapshot().Any(listener => listener.Steering is not null)
                ? "--balance shared keeps a listening socket per worker, and an upgrade hands over only one per endpoint; restart the supervisor instead, or run another --balance mode"
            : null;
        if (refusal is null)
        {
            try
            {
                _upgrade = SupervisorUpgrade.Start(
                    _runtimeDirectory.Path,
                    Path.GetFileName(_runtimeDirectory.Path),
                    request.To,
                    request.Arguments,
                    _listeners.Snapshot(),
                    Generation + 1,
                    UpgradeReadyLimit,
                    (progress, reason) => Post(new UpgradeReported(progress, reason)));
            }
            catch (UpgradeStartException ex)
            {
                refusal = ex.Message;
            }
        }

        if (refusal is not null)
        {
            SupervisorLog.UpgradeRefused(_logger, source, refusal);
            waiter?.TrySetResult(ControlResponse.Failure($"upgrade refused: {refusal}"));
            return;
        }

        if (waiter is not null)
        {
            _upgradeWaiters.Add(waiter);
        }

        SupervisorLog.UpgradeStarted(_logger, source, _upgrade!.Pid, _upgrade.CommandLine);
    }

    private void OnUpgradeReported(UpgradeReported report)
    {
        if (_upgrade is not { } upgrade)
        {
            return;
        }

        switch (report.Progress)
        {
            case UpgradeProgress.Ready when _stopPhase != StopPhase.None:
                FailUpgrade("the cluster is stopping");
                break;
            case UpgradeProgress.Ready:
                upgrade.SendTakeOver();
                break;
            case UpgradeProgress.TookOver:
                // systemd follows the service's main process to the new supervisor (NotifyAccess=main suffices).
                _systemd?.Notify($"MAINPID={upgrade.Pid}");
                _listeners.Release();
                _runtimeDirectory.HandOver();
                _adminHandover = ReleaseAdminAsync();
                SupervisorLog.UpgradeHandedOver(_logger, upgrade.Pid);
                ForwardWaitingConnections();
                foreach (var waiter in _upgradeWaiters)
                {
                    waiter.TrySetResult(ControlResponse.Success(
                        $"upgraded: the new supervisor (pid {upgrade.Pid}) serves the cluster; the old one (pid {Environment.ProcessId}) drains its workers and exits",
                        supervisor: DescribeSupervisor()));
                }

                _upgradeWaiters.Clear();
                BeginStop($"upgraded to pid {upgrade.Pid}", handedOver: true);
                break;
            default:
                FailUpgrade(report.Reason ?? "unknown");
                break;
        }
    }

    // An upgrade that has not handed over yet is abandoned: the new supervisor stops and this one keeps serving.
    private void FailUpgrade(string reason)
    {
        if (_upgrade is not { HasTakenOver: false } upgrade)
        {
            return;
        }

        upgrade.Abandon();
        upgrade.Dispose();
        _upgrade = null;
        SupervisorLog.UpgradeFailed(_logger, reason);
        foreach (var waiter in _upgradeWaiters)
        {
            waiter.TrySetResult(ControlResponse.Failure($"upgrade failed: {reason}. The running supervisor (pid {Environment.ProcessId}) keeps serving."));
        }

        _upgradeWaiters.Clear();
    }

    // After the handover, connections no worker of ours took (none was ready, or a draining one gave them back)
    // go to the new supervisor instead of being closed.
    private void ForwardWaitingConnections()
    {
        if (_upgrade is not { HasTakenOver: true } upgrade)
        {
            return;
        }

        var waiting = _dispatcher.TakeWaiting();
        if (waiting.Count == 0)
        {
            return;
        }

        var listeners = _listeners.Snapshot().ToDictionary(l => l.Id);
        foreach (var group in waiting.GroupBy(w => w.ListenerId))
        {
            var fds = group.Select(w => w.Fd).ToArray();
            if (listeners.TryGetValue(group.Key, out var listener))
            {
                upgrade.SendConnections(listener.Requested, fds);
            }
            else
            {
                ChannelSocket.CloseAll(fds);
            }
        }

        SupervisorLog.ConnectionsHandedOver(_logger, waiting.Count);
    }

    // New side, at start: the old supervisor's listening sockets, served only once we take over.
    private void AdoptHandedOverListeners()
    {
        if (_handover is null)
        {
            return;
        }

        foreach (var (sockets, requested) in _handover.Listeners)
        {
            SupervisorLog.AdoptedFromUpgrade(_logger, _listeners.Adopt(sockets, requested, released: true).BoundText);
        }

        _ = Task.Run(() => _handover.ReceiveAsync(() => Post(new UpgradeTakeOver()), DispatchHandedOver, CancellationToken.None), CancellationToken.None);
    }

    private void OnUpgradeTakeOver()
    {
        if (_handover is null || _tookOver || _stopPhase != StopPhase.None)
        {
            return;
        }

        _tookOver = true;
        _listeners.Claim();
        try
        {
            _runtimeDirectory.TakeOver();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            SupervisorLog.TakeOverFilesFailed(_logger, ex.Message);
        }

        _handover.SendTookOver();
        SupervisorLog.TookOver(_logger, Environment.ProcessId, _listeners.Snapshot().Count);
        if (_options.AdminUrls is { } adminUrls)
        {
            _adminHandover = BindAdminAfterTakeOverAsync(adminUrls);
        }
    }

    // Old side: the admin port goes to the new supervisor (probes meet a refused connection for the moment between).
    private async Task ReleaseAdminAsync()
    {
        if (_admin is { } admin)
        {
            _admin = null;
            await admin.DisposeAsync().ConfigureAwait(false);
        }
    }

    // New side: binds the admin port once the old supervisor, told that we took over, has let it go.
    private async Task BindAdminAfterTakeOverAsync(string adminUrls)
    {
        var deadline = Environment.TickCount64 + (long)AdminTakeOverLimit.TotalMilliseconds;
        while (true)
        {
            try
            {
                await StartAdminAsync(adminUrls, CancellationToken.None).ConfigureAwait(false);
                return;
            }
            catch (Exception ex) when (ex is IOException or InvalidOperationException or System.Net.Sockets.SocketException)
            {
                if (Environment.TickCount64 > deadline || _stopPhase != StopPhase.None)
                {
                    SupervisorLog.AdminTakeOverFailed(_logger, adminUrls, ex.Message);
                    return;
                }

                await Task.Delay(AdminRetryInterval).ConfigureAwait(false);
            }
        }
    }

    // Connections the old supervisor accepted: dispatched as if our own listener had accepted them.
    private void DispatchHandedOver(string requested, int[] fds)
    {
        var listener = _listeners.Snapshot().FirstOrDefault(l => l.Requested == requested);
        if (listener is null || _onAccepted is null)
        {
            ChannelSocket.CloseAll(fds);
            return;
        }

        _onAccepted(fds, listener);
    }

    private void OnAllReadyForUpgrade()
    {
        if (_handover is not null && !_tookOver)
        {
            _handover.SendReady();
        }
    }
}
