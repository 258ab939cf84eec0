using System.ComponentModel;
using System.Diagnostics;
using System.Security.Cryptography;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;

namespace KestrelCluster.Supervisor.Workers;

// One worker process: one generation of one slot.
internal sealed class WorkerInstance : IDisposable
{
    private readonly Process _process;

    internal WorkerInstance(int slotId, int generation, string token, Process process)
    {
        SlotId = slotId;
        Generation = generation;
        Token = token;
        _process = process;
        StartedAt = Environment.TickCount64;
    }

    public int SlotId { get; }

    public int Generation { get; }

    // Secret the worker presents on the channel. Never logged.
    public string Token { get; }

    public int Pid { get; private set; }

    public long StartedAt { get; }

    public WorkerState State { get; set; } = WorkerState.Starting;

    public WorkerSession? Session { get; set; }

    public bool BecameReady { get; set; }

    public long ReadyAt { get; set; }

    public long DrainStartedAt { get; set; }

    // The Stop frame went out (or there was no channel to send it on).
    public bool StopSent { get; set; }

    public int? ExitCode { get; private set; }

    public static WorkerInstance Start(
        WorkerCommand command,
        int slotId,
        int generation,
        string channelPath,
        string? urls,
        TextWriter output,
        Action<WorkerInstance> exited)
    {
        var startInfo = new ProcessStartInfo(command.FileName)
        {
            UseShellExecute = false,
            WorkingDirectory = command.WorkingDirectory,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var argument in command.Arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        foreach (var (name, value) in command.RuntimeDefaults)
        {
            startInfo.Environment[name] = value;
        }

        foreach (var variable in Hosting.SystemdNotifier.Variables.Concat(Hosting.SupervisorProcessSettings.NotForWorkers))
        {
            startInfo.Environment.Remove(variable);
        }

        foreach (var (name, value) in command.Variables ?? new Dictionary<string, string?>())
        {
            startInfo.Environment[name] = value;
        }

        var token = Convert.ToHexString(RandomNumberGenerator.GetBytes(32));
        startInfo.Environment[ClusterEnvironment.Channel] = channelPath;
        startInfo.Environment[ClusterEnvironment.Token] = token;
        startInfo.Environment[ClusterEnvironment.WorkerId] = slotId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        startInfo.Environment[ClusterEnvironment.Generation] = generation.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (urls is not null)
        {
            startInfo.Environment["ASPNETCORE_URLS"] = urls;
        }

        var process = new Process { StartInfo = startInfo, EnableRaisingEvents = true };
        var instance = new WorkerInstance(slotId, generation, token, process);
        process.Exited += (_, _) =>
        {
            instance.ExitCode = SafeExitCode(process);
            exited(instance);
        };

        try
        {
            process.Start();
        }
        catch (Win32Exception ex)
        {
            process.Dispose();
            throw new WorkerStartException($"cannot start '{command.FileName}': {ex.Message}");
        }

        instance.Pid = process.Id;
        var prefix = $"[worker {slotId} pid {instance.Pid}] ";
        process.OutputDataReceived += (_, e) => Forward(output, prefix, e.Data);
        process.ErrorDataReceived += (_, e) => Forward(output, prefix, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        // Workers never read the supervisor's terminal.
        process.StandardInput.Close();
        return instance;
    }

    public bool HasExited => ExitCode is not null;

    // From the last SampleResources(): CPU % since the sample before, resident memory in bytes.
    public double CpuPercent { get; private set; }

    public long MemoryBytes { get; private set; }

    private TimeSpan _lastCpu;
    private long _lastSampleAt;

    /// <summary>Reads CPU time and resident memory of the app's process (the channel peer, when a wrapper started it).</summary>
    public void SampleResources(long now)
    {
        try
        {
            var process = _process;
            if (Session is { Peer.ProcessId: var peerPid } && peerPid != Pid)
            {
                process = _peerProcess ??= Process.GetProcessById(peerPid);
            }

            process.Refresh();
            var cpu = process.TotalProcessorTime;
            if (_lastSampleAt != 0 && now > _lastSampleAt)
            {
                CpuPercent = Math.Round((cpu - _lastCpu).TotalMilliseconds * 100 / (now - _lastSampleAt), 1);
            }

            _lastCpu = cpu;
            _lastSampleAt = now;
            MemoryBytes = process.WorkingSet64;
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or Win32Exception)
        {
            // exited between two samples
        }
    }

    private Process? _peerProcess;

    public void Kill()
    {
        if (HasExited)
        {
            return;
        }

        try
        {
            _process.Kill(entireProcessTree: true);
        }
        catch (Exception ex) when (ex is InvalidOperationException or Win32Exception)
        {
            // already gone
        }

        // A wrapper command (e.g. `dotnet run`) may have started the real app as a grandchild of ours.
        if (Session is { Peer.ProcessId: var peerPid } && peerPid != Pid)
        {
            Libc.Kill(peerPid, Libc.SIGKILL);
        }
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

    private static int SafeExitCode(Process process)
    {
        try
        {
            return process.ExitCode;
        }
        catch (InvalidOperationException)
        {
            return -1;
        }
    }

    private static void Forward(TextWriter output, string prefix, string? line)
    {
        if (line is not null)
        {
            output.WriteLine(prefix + line);
        }
    }

    public void Dispose()
    {
        _process.Dispose();
        _peerProcess?.Dispose();
    }
}

internal sealed class WorkerStartException(string message) : Exception(message);
