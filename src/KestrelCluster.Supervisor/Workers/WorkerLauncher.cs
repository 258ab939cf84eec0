using System.ComponentModel;
using System.Diagnostics;
using KestrelCluster.Protocol;
using KestrelCluster.Supervisor.Runtime;

namespace KestrelCluster.Supervisor.Workers;

/// <summary>What one worker process is started with: its slot, generation, one-time channel token, and its generation's command.</summary>
internal sealed record WorkerLaunch(int SlotId, int Generation, string Token, WorkerCommand? Command = null);

/// <summary>Starts worker processes. The supervisor's lifecycle rules run against this seam, so tests can fail a spawn on demand.</summary>
internal interface IWorkerLauncher
{
    /// <summary>Starts one worker; <paramref name="exited"/> runs on any thread once it has exited. Throws <see cref="WorkerStartException"/> when it cannot be started.</summary>
    IWorkerProcess Launch(WorkerLaunch launch, Action<int> exited);
}

/// <summary>A started worker process, as the supervisor sees it.</summary>
internal interface IWorkerProcess : IDisposable
{
    int Pid { get; }

    /// <summary>Kills the process and everything it started.</summary>
    void Kill();

    /// <summary>CPU time and resident memory of <paramref name="pid"/> (this process or the app a wrapper started); false once it is gone.</summary>
    bool TrySample(int pid, out TimeSpan cpu, out long residentBytes);

    /// <summary>Its output said "address already in use": with no channel, a sign that it binds its ports itself.</summary>
    bool SaidAddressInUse => false;
}

/// <summary>Starting a worker failed (a deleted working directory, EMFILE, EAGAIN from a fork limit, a missing executable).</summary>
internal sealed class WorkerStartException(string message) : Exception(message);

// Starts the launch's command as a child process with the worker contract's environment, its output forwarded.
internal sealed class ProcessWorkerLauncher(string channelPath, string? urls, TextWriter output) : IWorkerLauncher
{
    public IWorkerProcess Launch(WorkerLaunch launch, Action<int> exited)
    {
        var command = launch.Command ?? throw new ArgumentException("a worker launch needs its command", nameof(launch));
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

        SupervisorProcessSettings.RemoveSupervisorOnly(startInfo.Environment);

        foreach (var (name, value) in command.Variables ?? new Dictionary<string, string?>())
        {
            startInfo.Environment[name] = value;
        }

        startInfo.Environment[ClusterEnvironment.Channel] = channelPath;
        startInfo.Environment[ClusterEnvironment.Token] = launch.Token;
        startInfo.Environment[ClusterEnvironment.WorkerId] = launch.SlotId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        startInfo.Environment[ClusterEnvironment.Generation] = launch.Generation.ToString(System.Globalization.CultureInfo.InvariantCulture);
        startInfo.Environment[ClusterEnvironment.Protocol] = ClusterEnvironment.ProtocolRevision.ToString(System.Globalization.CultureInfo.InvariantCulture);
        startInfo.Environment[ClusterEnvironment.DataProtectionKeys] = RuntimeDirectory.DataProtectionKeysPathBeside(channelPath);
        if (urls is not null)
        {
            startInfo.Environment["ASPNETCORE_URLS"] = urls;
        }

        var process = new Process { StartInfo = startInfo, EnableRaisingEvents = true };
        process.Exited += (_, _) => exited(SafeExitCode(process));
        try
        {
            process.Start();
        }
        catch (Exception ex) when (ex is Win32Exception or IOException or UnauthorizedAccessException)
        {
            // Win32Exception: fork or exec failed (EAGAIN at a process limit, a missing executable or working folder);
            // IOException: the pipes for its output could not be made (EMFILE at the supervisor's own fd limit).
            process.Dispose();
            throw new WorkerStartException($"cannot start '{command.FileName}' in {command.WorkingDirectory}: {ex.Message}");
        }

        var child = new ChildProcess(process);
        var prefix = $"[worker {launch.SlotId} pid {process.Id}] ";
        process.OutputDataReceived += (_, e) => child.Forward(output, prefix, e.Data);
        process.ErrorDataReceived += (_, e) => child.Forward(output, prefix, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        // Workers never read the supervisor's terminal.
        process.StandardInput.Close();
        return child;
    }

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

    private sealed class ChildProcess(Process process) : IWorkerProcess
    {
        private Process? _peer;
        private volatile bool _saidAddressInUse;

        public int Pid { get; } = process.Id;

        public bool SaidAddressInUse => _saidAddressInUse;

        public void Forward(TextWriter output, string prefix, string? line)
        {
            if (line is null)
            {
                return;
            }

            // Kestrel's "Failed to bind to address ...: address already in use."
            if (!_saidAddressInUse && line.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
            {
                _saidAddressInUse = true;
            }

            output.WriteLine(prefix + line);
        }

        public void Kill()
        {
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (Exception ex) when (ex is InvalidOperationException or Win32Exception)
            {
                // already gone
            }
        }

        public bool TrySample(int pid, out TimeSpan cpu, out long residentBytes)
        {
            try
            {
                var target = process;
                if (pid != Pid)
                {
                    target = _peer ??= Process.GetProcessById(pid);
                }

                target.Refresh();
                cpu = target.TotalProcessorTime;
                residentBytes = target.WorkingSet64;
                return true;
            }
            catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or Win32Exception)
            {
                // exited between two samples
                cpu = default;
                residentBytes = 0;
                return false;
            }
        }

        public void Dispose()
        {
            process.Dispose();
            _peer?.Dispose();
        }
    }
}
