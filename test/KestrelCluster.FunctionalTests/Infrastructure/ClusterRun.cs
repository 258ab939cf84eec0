using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Infrastructure;

/// <summary>
/// A real `kestrel-cluster run` process in a private runtime folder. Its output goes to the test log;
/// every process it started (supervisor and workers, by pid) is killed on dispose.
/// </summary>
public sealed partial class ClusterRun : IAsyncDisposable
{
    public static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    private readonly Process _process;
    private readonly ITestOutputHelper? _output;
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly ConcurrentQueue<string> _errorLines = new();
    private readonly SemaphoreSlim _lineAdded = new(0);
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource? _stdoutPaused;
    private Task _stdoutReader = Task.CompletedTask;

    private readonly ServiceLayout _layout;

    private ClusterRun(Process process, string runtimeRoot, string name, ITestOutputHelper? output, UnixUser? owner, ServiceLayout layout)
    {
        _process = process;
        RuntimeRoot = runtimeRoot;
        Name = name;
        _output = output;
        Owner = owner;
        _layout = layout;
    }

    public int Pid => _process.Id;

    public string Name { get; }

    /// <summary>XDG_RUNTIME_DIR of this run (TMPDIR of a run as another user): channel and control sockets live below it.</summary>
    public string RuntimeRoot { get; }

    /// <summary>The user the supervisor runs as, when not this test's (root's).</summary>
    public UnixUser? Owner { get; }

    /// <summary>This cluster's own folder below the runtime root (channel socket); gone after a clean exit.</summary>
    public string RuntimeFolder => Owner is null || _layout == ServiceLayout.SystemdRuntimeDirectory
        ? Path.Combine(RuntimeRoot, "kestrel-cluster", Name)
        : Path.Combine(RuntimeRoot, $"kestrel-cluster-{Owner.Uid}", Name);

    public string ChannelPath => Path.Combine(RuntimeFolder, "channel.sock");

    /// <summary>stdout and stderr lines, in arrival order.</summary>
    public IReadOnlyList<string> Lines => [.. _lines];

    /// <summary>The supervisor's stderr lines only (its own and the workers' output go to stdout).</summary>
    public IReadOnlyList<string> ErrorLines => [.. _errorLines];

    public string Output => string.Join('\n', _lines);

    public bool HasExited => _exited.Task.IsCompleted;

    public int ExitCode => _process.ExitCode;

    /// <summary>Supervisors this one started by `upgrade` (they write to the same output).</summary>
    public IReadOnlyList<int> UpgradedSupervisorPids => [.. _lines.Select(l => UpgradeStartedPattern().Match(l)).Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value))];

    /// <summary>Every worker pid the supervisor reported starting.</summary>
    public IReadOnlyList<int> WorkerPids => [.. _lines.Select(l => WorkerStartedPattern().Match(l)).Where(m => m.Success).Select(m => int.Parse(m.Groups[2].Value))];

    /// <summary>
    /// Starts `kestrel-cluster run [arguments]` serving the HelloCluster sample unless a command is given.
    /// With an owner, the supervisor runs as that user the way a system service does (see <see cref="ServiceLayout"/>);
    /// its TMPDIR or XDG_RUNTIME_DIR is then a private sticky folder like /tmp, and the CLI runs without either.
    /// </summary>
    public static ClusterRun Start(ITestOutputHelper? output, IEnumerable<string> arguments, IDictionary<string, string>? environment = null, bool appendSampleCommand = true, string? workingDirectory = null, IReadOnlyList<string>? launcher = null, IReadOnlyList<string>? supervisorCommand = null, UnixUser? owner = null, ServiceLayout layout = ServiceLayout.NoRuntimeDirectory)
    {
        string runtimeRoot;
        if (owner is not null && layout == ServiceLayout.SystemdRuntimeDirectory)
        {
            runtimeRoot = Path.Combine("/run", "kct-" + Guid.NewGuid().ToString("N")[..10]);
            Directory.CreateDirectory(runtimeRoot);
        }
        else
        {
            runtimeRoot = TestPaths.NewTempDirectory();
        }

        var name = "t" + Guid.NewGuid().ToString("N")[..8];
        if (owner is not null)
        {
            File.SetUnixFileMode(runtimeRoot, (UnixFileMode)0b1_111_111_111);
            launcher = [.. owner.SetprivPrefix, .. launcher ?? []];
        }

        // A launcher that execs the supervisor (e.g. systemd-socket-activate) keeps the supervisor's pid.
        // The supervisor: the tree's build by default; the packaging tests give the installed tool instead.
        IReadOnlyList<string> command = [.. launcher ?? [], .. supervisorCommand ?? [TestPaths.Dotnet, TestPaths.SupervisorDll]];
        var startInfo = new ProcessStartInfo(command[0])
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            WorkingDirectory = workingDirectory ?? TestPaths.SampleDirectory,
        };
        foreach (var argument in command.Skip(1))
        {
            startInfo.ArgumentList.Add(argument);
        }

        startInfo.ArgumentList.Add("run");
        startInfo.ArgumentList.Add("--name");
        startInfo.ArgumentList.Add(name);
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        if (appendSampleCommand)
        {
            startInfo.ArgumentList.Add("--");
            startInfo.ArgumentList.Add(TestPaths.Dotnet);
            startInfo.ArgumentList.Add(TestPaths.SampleDll);
        }

        foreach (var (key, value) in RuntimeEnvironment(runtimeRoot, owner, layout, forCli: false))
        {
            if (value is null)
            {
                startInfo.Environment.Remove(key);
            }
            else
            {
                startInfo.Environment[key] = value;
            }
        }

        startInfo.Environment.Remove("ASPNETCORE_URLS");
        startInfo.Environment.Remove("KESTREL_CLUSTER_CHANNEL");
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            startInfo.Environment[key] = value;
        }

        var process = new Process { StartInfo = startInfo, EnableRaisingEvents = true };
        var run = new ClusterRun(process, runtimeRoot, name, output, owner, layout);
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                run._errorLines.Enqueue(e.Data);
            }

            run.OnLine(e.Data);
        };
        process.Exited += (_, _) => run._exited.TrySetResult();
        process.Start();
        run._stdoutReader = Task.Run(() => run.ReadStdoutAsync(process.StandardOutput));
        process.BeginErrorReadLine();
        return run;
    }

    /// <summary>
    /// Stops reading the supervisor's stdout, as a paused terminal or a stuck log shipper would: once the pipe is
    /// full, the supervisor's writes to stdout block. <see cref="ResumeStdout"/> reads on.
    /// </summary>
    public void PauseStdout() => Interlocked.CompareExchange(ref _stdoutPaused, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), null);

    public void ResumeStdout() => Interlocked.Exchange(ref _stdoutPaused, null)?.TrySetResult();

    private async Task ReadStdoutAsync(StreamReader stdout)
    {
        while (true)
        {
            if (Volatile.Read(ref _stdoutPaused) is { } paused)
            {
                await paused.Task;
            }

            var line = await stdout.ReadLineAsync();
            if (line is null)
            {
                return;
            }

            OnLine(line);
        }
    }

    /// <summary>Starts a cluster of the sample and waits until every worker is ready and the port is known.</summary>
    public static async Task<ClusterRun> StartReadyAsync(ITestOutputHelper? output, int workers, string urls = "http://127.0.0.1:0", IDictionary<string, string>? environment = null, string? workingDirectory = null, UnixUser? owner = null, ServiceLayout layout = ServiceLayout.NoRuntimeDirectory, params string[] extraArguments)
    {
        var run = Start(output, ["--workers", workers.ToString(), "--urls", urls, .. extraArguments], environment, workingDirectory: workingDirectory, owner: owner, layout: layout);
        return await run.ReadyAsync(workers);
    }

    /// <summary>Starts 2 workers of a test app (its dll, run from its folder) and waits until both are ready.</summary>
    public static async Task<ClusterRun> StartAppReadyAsync(ITestOutputHelper? output, string appDll, IDictionary<string, string>? environment = null, params string[] extraArguments)
    {
        var run = Start(output, ["--workers", "2", "--urls", "http://127.0.0.1:0", .. extraArguments, "--", TestPaths.Dotnet, appDll],
            environment, appendSampleCommand: false, workingDirectory: Path.GetDirectoryName(appDll));
        return await run.ReadyAsync(workers: 2);
    }

    /// <summary>Waits until every worker of this cluster is ready; a cluster that never gets there is disposed (its processes killed).</summary>
    public async Task<ClusterRun> ReadyAsync(int workers)
    {
        try
        {
            await WaitForLineAsync(new Regex($"All {workers} workers ready"), StartTimeout);
            return this;
        }
        catch
        {
            await DisposeAsync();
            throw;
        }
    }

    /// <summary>Workers that reported ready and are still alive.</summary>
    public IReadOnlyList<int> ReadyWorkerPids() => [.. _lines.Select(l => WorkerReadyPattern().Match(l)).Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value)).Distinct().Where(ProcessInfo.IsAlive)];

    /// <summary>Pids of the supervisor's live child processes right now (its workers, whatever was restarted).</summary>
    public IReadOnlyList<int> LiveWorkerPids() => ProcessInfo.ChildrenOf(Pid);

    /// <summary>The channel token a worker process was started with (read from its environment, as its own uid can).</summary>
    public static string? TokenOf(int workerPid) => ProcessInfo.EnvironmentOf(workerPid).GetValueOrDefault("KESTREL_CLUSTER_TOKEN");

    /// <summary>
    /// Opens the runtime folders and both sockets to every user, so that only the supervisor's own SO_PEERCRED
    /// check stands between another uid and the cluster.
    /// </summary>
    public void OpenToOtherUsers()
    {
        foreach (var path in new[] { RuntimeRoot, Path.GetDirectoryName(RuntimeFolder)!, RuntimeFolder })
        {
            File.SetUnixFileMode(path, (UnixFileMode)0b111_101_101);
        }

        foreach (var socket in new[] { ChannelPath, Path.Combine(RuntimeFolder, "control.sock") })
        {
            File.SetUnixFileMode(socket, (UnixFileMode)0b110_110_110);
        }
    }

    /// <summary>The port of the first TCP endpoint the supervisor listens on.</summary>
    public int Port => ListeningEndpoints().Select(e => int.Parse(e[(e.LastIndexOf(':') + 1)..])).First();

    /// <summary>A client for the admin endpoints (--admin-urls), once the supervisor has said where they are.</summary>
    public async Task<HttpClient> AdminClientAsync()
    {
        var line = await WaitForLineAsync(new Regex(@"Admin endpoints .* on (http://\S+)"), StartTimeout);
        var address = Regex.Match(line, @"on (http://\S+)").Groups[1].Value.TrimEnd(',');
        return new HttpClient { BaseAddress = new Uri(address), Timeout = Http.RequestTimeout };
    }

    public IReadOnlyList<string> ListeningEndpoints() => [.. _lines.Select(l => ListeningPattern().Match(l)).Where(m => m.Success).Select(m => m.Groups[1].Value)];

    public async Task<string> WaitForLineAsync(Regex pattern, TimeSpan timeout, int skip = 0)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var match = _lines.Where(l => pattern.IsMatch(l)).Skip(skip).FirstOrDefault();
            if (match is not null)
            {
                return match;
            }

            var remaining = deadline - DateTime.UtcNow;
            if (remaining <= TimeSpan.Zero)
            {
                throw new TimeoutException($"No output line matched /{pattern}/ within {timeout.TotalSeconds} s. Output:\n{Output}");
            }

            if (HasExited && !await _lineAdded.WaitAsync(TimeSpan.FromMilliseconds(200)))
            {
                throw new InvalidOperationException($"kestrel-cluster exited ({_process.ExitCode}) before a line matched /{pattern}/. Output:\n{Output}");
            }

            await _lineAdded.WaitAsync(remaining < TimeSpan.FromMilliseconds(200) ? remaining : TimeSpan.FromMilliseconds(200));
        }
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        await _exited.Task.WaitAsync(timeout);
        // Exited fires before the redirected streams are drained.
        await _process.WaitForExitAsync().WaitAsync(timeout);
        await _stdoutReader.WaitAsync(timeout);
        return _process.ExitCode;
    }

    /// <summary>
    /// Waits for the supervisor process alone: after an upgrade its successor still writes to the same output,
    /// which therefore stays open.
    /// </summary>
    public async Task<int> WaitForProcessExitAsync(TimeSpan timeout)
    {
        await _exited.Task.WaitAsync(timeout);
        return _process.ExitCode;
    }

    public void Signal(int signal) => ProcessInfo.Signal(_process.Id, signal);

    /// <summary>Runs a control verb (`list`, `reload`, `scale N`, `stop`) against this cluster, as a user would.</summary>
    public Task<(int ExitCode, string Stdout, string Stderr)> RunCliAsync(TimeSpan timeout, params string[] arguments)
        => RunCliAsAsync(null, timeout, [.. arguments, "-n", Name]);

    /// <summary>
    /// Runs `kestrel-cluster [arguments]` (nothing added) as <paramref name="user"/> (null: this test's user), with
    /// the environment of the cluster's own user, or for a run with an owner, that of an operator's shell: no XDG_RUNTIME_DIR.
    /// </summary>
    public async Task<(int ExitCode, string Stdout, string Stderr)> RunCliAsAsync(UnixUser? user, TimeSpan timeout, params string[] arguments)
    {
        IReadOnlyList<string> command = [.. user?.SetprivPrefix ?? [], TestPaths.Dotnet, TestPaths.SupervisorDll, .. arguments];
        var result = await ExternalCommand.RunAsync(command[0], command.Skip(1), timeout, RuntimeEnvironment(RuntimeRoot, Owner, _layout, forCli: true));
        _output?.WriteLine($"$ {(user is null ? "" : $"(uid {user.Uid}) ")}kestrel-cluster {string.Join(' ', arguments)} → {result.ExitCode}\n{result.Stdout}{result.Stderr}");
        return result;
    }

    private static Dictionary<string, string?> RuntimeEnvironment(string runtimeRoot, UnixUser? owner, ServiceLayout layout, bool forCli) => (owner, layout) switch
    {
        (null, _) => new() { ["XDG_RUNTIME_DIR"] = runtimeRoot },
        (_, ServiceLayout.NoRuntimeDirectory) => new() { ["XDG_RUNTIME_DIR"] = null, ["TMPDIR"] = runtimeRoot, ["HOME"] = "/tmp", ["DOTNET_CLI_HOME"] = "/tmp" },
        _ => new() { ["XDG_RUNTIME_DIR"] = forCli ? null : runtimeRoot, ["HOME"] = "/tmp", ["DOTNET_CLI_HOME"] = "/tmp" },
    };

    /// <summary>`list --json`, parsed: the workers' rows.</summary>
    public async Task<IReadOnlyList<ListedWorker>> ListAsync() => (await ListAllAsync()).Workers;

    /// <summary>`list --json`, parsed: the supervisor's row and the workers' rows.</summary>
    public async Task<ListedCluster> ListAllAsync()
    {
        var (exitCode, stdout, stderr) = await RunCliAsync(TimeSpan.FromSeconds(30), "list", "--json");
        Assert.True(exitCode == 0, $"list failed: {stderr}");
        return System.Text.Json.JsonSerializer.Deserialize<ListedCluster>(stdout, new System.Text.Json.JsonSerializerOptions(System.Text.Json.JsonSerializerDefaults.Web))!;
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        _lines.Enqueue(line);
        _lineAdded.Release();
        try
        {
            _output?.WriteLine(line);
        }
        catch (InvalidOperationException)
        {
            // the test is over; keep collecting for cleanup
        }
    }

    public async ValueTask DisposeAsync()
    {
        ResumeStdout();
        // Workers whose start line was never read (stdout paused) are found as the supervisor's children.
        var workers = HasExited ? WorkerPids : [.. WorkerPids, .. LiveWorkerPids()];
        if (!HasExited)
        {
            Signal(ProcessInfo.SIGKILL);
        }

        var upgraded = UpgradedSupervisorPids;
        foreach (var pid in upgraded.Concat(workers))
        {
            ProcessInfo.Signal(pid, ProcessInfo.SIGKILL);
        }

        try
        {
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (TimeoutException)
        {
        }

        await ProcessInfo.WaitUntilGoneAsync([.. workers, .. upgraded], TimeSpan.FromSeconds(10));
        _process.Dispose();
        try
        {
            Directory.Delete(RuntimeRoot, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    public sealed record ListedWorker(int Id, int Pid, int Generation, string State, double UptimeSeconds, int Restarts, int OpenConnections, long TotalConnections, double CpuPercent, long MemoryBytes);

    public sealed record ListedSupervisor(int Pid, double UptimeSeconds, double CpuPercent, long MemoryBytes, int Generation, string Balance);

    public sealed record ListedCluster(ListedSupervisor Supervisor, IReadOnlyList<ListedWorker> Workers);

    [GeneratedRegex(@"Worker (\d+) started \(pid (\d+)")]
    private static partial Regex WorkerStartedPattern();

    [GeneratedRegex(@"Worker \d+ ready \(pid (\d+)")]
    private static partial Regex WorkerReadyPattern();

    [GeneratedRegex(@"started the new supervisor \(pid (\d+)\)")]
    private static partial Regex UpgradeStartedPattern();

    [GeneratedRegex(@"Listening on (\S+)$")]
    private static partial Regex ListeningPattern();
}
