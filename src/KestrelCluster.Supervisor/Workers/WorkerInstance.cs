using KestrelCluster.Interop;

namespace KestrelCluster.Supervisor.Workers;

// One worker process: one generation of one slot. Its lifecycle (starting → ready → draining → exited, and
// the kill that ends a drain or a start that took too long) changes only through the methods below, called
// from the supervisor loop.
internal sealed class WorkerInstance : IDisposable
{
    private IWorkerProcess? _process;
    private TimeSpan _lastCpu;
    private long _lastSampleAt;

    public WorkerInstance(WorkerLaunch launch, long startedAt)
    {
        SlotId = launch.SlotId;
        Generation = launch.Generation;
        Token = launch.Token;
        StartedAt = startedAt;
    }

    public int SlotId { get; }

    public int Generation { get; }

    // Secret the worker presents on the channel. Never logged.
    public string Token { get; }

    public int Pid => _process?.Pid ?? 0;

    public long StartedAt { get; }

    public WorkerState State { get; private set; } = WorkerState.Starting;

    public WorkerSession? Session { get; set; }

    public bool BecameReady { get; private set; }

    public long ReadyAt { get; private set; }

    public long DrainStartedAt { get; private set; }

    // The Stop frame went out (or there was no channel to send it on).
    public bool StopSent { get; private set; }

    // Killed because a deadline passed (ready timeout, drain timeout, heartbeat): not killed twice.
    public bool KillSent { get; private set; }

    public int? ExitCode { get; private set; }

    public bool HasExited => ExitCode is not null;

    // From the last SampleResources(): CPU % since the sample before, resident memory in bytes.
    public double CpuPercent { get; private set; }

    public long MemoryBytes { get; private set; }

    public void Attach(IWorkerProcess process) => _process = process;

    // Never connected to the channel, and its output said "address already in use": it binds its ports itself.
    public bool BoundPortsItself => Session is null && _process is { SaidAddressInUse: true };

    /// <summary>Starting → Ready. False when the worker is past that (draining, exited) and must not get connections.</summary>
    public bool MarkReady(long now)
    {
        if (State != WorkerState.Starting)
        {
            return false;
        }

        State = WorkerState.Ready;
        BecameReady = true;
        ReadyAt = now;
        return true;
    }

    /// <summary>Receives nothing new from now on; the drain deadline counts from the first call.</summary>
    public void BeginDrain(long now)
    {
        if (State is WorkerState.Draining or WorkerState.Exited)
        {
            return;
        }

        State = WorkerState.Draining;
        DrainStartedAt = now;
    }

    public void MarkStopSent() => StopSent = true;

    public bool IsPastReadyTimeout(long now, TimeSpan timeout) => State == WorkerState.Starting && now - StartedAt > timeout.TotalMilliseconds;

    public bool IsPastDrainTimeout(long now, TimeSpan timeout) => State == WorkerState.Draining && !KillSent && now - DrainStartedAt > timeout.TotalMilliseconds;

    /// <summary>Drains (if not already) and kills: for a deadline passed or a worker that cannot be trusted.</summary>
    public void KillNow(long now)
    {
        BeginDrain(now);
        StopSent = true;
        KillSent = true;
        Kill();
    }

    public void MarkExited(int exitCode)
    {
        ExitCode = exitCode;
        State = WorkerState.Exited;
    }

    public void Kill()
    {
        if (HasExited)
        {
            return;
        }

        _process?.Kill();
        // A wrapper command (e.g. `dotnet run`) may have started the real app as a grandchild of ours.
        if (Session is { Peer.ProcessId: var peerPid } && peerPid != Pid)
        {
            Libc.Kill(peerPid, Libc.SIGKILL);
        }
    }

    /// <summary>Reads CPU time and resident memory of the app's process (the channel peer, when a wrapper started it).</summary>
    public void SampleResources(long now)
    {
        var pid = Session is { Peer.ProcessId: var peerPid } ? peerPid : Pid;
        if (_process is null || !_process.TrySample(pid, out var cpu, out var resident))
        {
            return;
        }

        if (_lastSampleAt != 0 && now > _lastSampleAt)
        {
            CpuPercent = Math.Round((cpu - _lastCpu).TotalMilliseconds * 100 / (now - _lastSampleAt), 1);
        }

        _lastCpu = cpu;
        _lastSampleAt = now;
        MemoryBytes = resident;
    }

    public static string DescribeExit(int exitCode) => exitCode > 128 && exitCode < 128 + 65
        ? $"signal {exitCode - 128} ({SignalName(exitCode - 128)})"
        : $"exit code {exitCode}";

    private static string SignalName(int signal) => signal switch
    {
        1 => "SIGHUP",
        2 => "SIGINT",
        6 => "SIGABRT",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        15 => "SIGTERM",
        _ => "SIG" + signal,
    };

    public void Dispose() => _process?.Dispose();
}
