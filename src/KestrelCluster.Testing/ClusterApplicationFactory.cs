using KestrelCluster.Supervisor.Hosting;
using KestrelCluster.Testing.Internal;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Testing;

/// <summary>
/// Runs the app of <typeparamref name="TEntryPoint"/> as a real cluster for integration tests: a kestrel-cluster
/// supervisor inside the test process and N worker processes (<c>dotnet &lt;the app's dll&gt;</c>) sharing one
/// port on 127.0.0.1. It is used like <c>WebApplicationFactory&lt;TEntryPoint&gt;</c> (a class fixture, or
/// <c>await using</c> in a test), plus what only a cluster has: its workers, killing one, reload and scale.
/// </summary>
/// <remarks>
/// The cluster starts on the first call that needs it (<see cref="CreateClient"/>, <see cref="ServerAddress"/>, ...)
/// or explicitly with <see cref="StartAsync"/>. Disposal stops it gracefully and then kills, by pid, any process it
/// started that is still alive; a failed or cancelled start does the same before it throws. If the test process
/// exits without disposing the factory, its workers are killed on exit, and a worker whose supervisor is gone
/// stops on its own.
/// </remarks>
/// <typeparam name="TEntryPoint">A type in the entry assembly of the app under test, usually its <c>Program</c>.</typeparam>
public class ClusterApplicationFactory<TEntryPoint> : IAsyncDisposable, IDisposable
    where TEntryPoint : class
{
    private static readonly TimeSpan StopMargin = TimeSpan.FromSeconds(15);

    private readonly Lock _lock = new();
    private readonly OutputSink _output = new();
    private readonly Dictionary<string, string?> _variables = new(StringComparer.Ordinal);
    private int _workers = 2;
    private string _environmentName = "Development";
    private string? _contentRoot;
    private TimeSpan _readyTimeout = TimeSpan.FromSeconds(30);
    private TimeSpan _killTimeout = TimeSpan.FromSeconds(5);
    private Task? _start;
    private InProcessCluster? _cluster;
    private ILoggerFactory? _loggerFactory;
    private string? _runtimeRoot;
    private Uri? _serverAddress;
    private int _expectedWorkers;
    private bool _disposed;

    /// <summary>The cluster's address, <c>http://127.0.0.1:&lt;port&gt;</c> (port 0 bound once, shared by every worker). Starts the cluster if needed.</summary>
    public Uri ServerAddress
    {
        get
        {
            EnsureStarted();
            return _serverAddress!;
        }
    }

    /// <summary>Number of worker processes (default 2).</summary>
    public ClusterApplicationFactory<TEntryPoint> WithWorkers(int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, InProcessCluster.MaxWorkers);
        return Configure(() => _workers = count);
    }

    /// <summary>
    /// A configuration value for the workers, e.g. <c>WithSetting("Greeting:Text", "hi")</c>: given as the
    /// environment variable <c>Greeting__Text</c>, which the default configuration of an ASP.NET Core app reads.
    /// </summary>
    public ClusterApplicationFactory<TEntryPoint> WithSetting(string key, string? value)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        return WithEnvironmentVariable(key.Replace(":", "__", StringComparison.Ordinal), value);
    }

    /// <summary>An environment variable for every worker; <see langword="null"/> removes one the test process has.</summary>
    public ClusterApplicationFactory<TEntryPoint> WithEnvironmentVariable(string name, string? value)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        return Configure(() => _variables[name] = value);
    }

    /// <summary>The workers' environment name (<c>ASPNETCORE_ENVIRONMENT</c>); default <c>Development</c>, as with WebApplicationFactory.</summary>
    public ClusterApplicationFactory<TEntryPoint> WithEnvironment(string environmentName)
    {
        ArgumentException.ThrowIfNullOrEmpty(environmentName);
        return Configure(() => _environmentName = environmentName);
    }

    /// <summary>
    /// The workers' working directory, which is the app's content root (<c>appsettings.json</c>, <c>wwwroot</c>).
    /// Default: the folder of the app's dll (the test's output folder, where the app's files are copied).
    /// </summary>
    public ClusterApplicationFactory<TEntryPoint> WithContentRoot(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return Configure(() => _contentRoot = Path.GetFullPath(path));
    }

    /// <summary>How long a worker has to become ready (default 30 s), at start, restart, reload and scale.</summary>
    public ClusterApplicationFactory<TEntryPoint> WithReadyTimeout(TimeSpan timeout)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(timeout, TimeSpan.Zero);
        return Configure(() => _readyTimeout = timeout);
    }

    /// <summary>How long a stopping worker may drain its requests before it is killed (default 5 s, shorter than the CLI's).</summary>
    public ClusterApplicationFactory<TEntryPoint> WithKillTimeout(TimeSpan timeout)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(timeout, TimeSpan.Zero);
        return Configure(() => _killTimeout = timeout);
    }

    /// <summary>
    /// Receives every line the cluster prints: the supervisor's log (<c>[supervisor] info: ...</c>) and each
    /// worker's output (<c>[worker 1 pid 4242] ...</c>), e.g. <c>WithOutput(testOutputHelper.WriteLine)</c>;
    /// <see langword="null"/> stops it. Unlike the other settings it may be changed at any time, e.g. by each test of
    /// a class fixture; exceptions from a finished test's output helper are ignored.
    /// </summary>
    public ClusterApplicationFactory<TEntryPoint> WithOutput(Action<string>? output)
    {
        _output.Callback = output;
        return this;
    }

    /// <summary>
    /// Starts the cluster and waits until every worker is ready. Safe to call more than once. If it fails or is
    /// cancelled, everything it started is stopped before it throws.
    /// </summary>
    public Task StartAsync(CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _start ??= StartCoreAsync(cancellationToken);
        }
    }

    /// <summary>An <see cref="HttpClient"/> whose base address is <see cref="ServerAddress"/>. Starts the cluster if needed.</summary>
    /// <remarks>Its pooled keep-alive connections each stay with one worker; set <c>DefaultRequestHeaders.ConnectionClose = true</c> to spread requests.</remarks>
    public HttpClient CreateClient() => new() { BaseAddress = ServerAddress };

    /// <summary>The workers as the supervisor sees them now, ordered by id (a reloading slot shows both generations).</summary>
    public async Task<IReadOnlyList<ClusterWorker>> GetWorkersAsync(CancellationToken cancellationToken = default)
    {
        var cluster = await StartedClusterAsync(cancellationToken).ConfigureAwait(false);
        var workers = await CommandAsync(cluster.ListAsync(cancellationToken)).ConfigureAwait(false);
        return [.. workers.Select(ToPublic)];
    }

    /// <summary>Waits until the cluster has its number of workers, all ready (e.g. after a worker was killed and restarted).</summary>
    public async Task WaitForReadyAsync(CancellationToken cancellationToken = default)
    {
        var cluster = await StartedClusterAsync(cancellationToken).ConfigureAwait(false);
        await WaitForReadyCoreAsync(cluster, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Kills worker <paramref name="id"/> with SIGKILL, as a crash would, and returns once the supervisor has seen it
    /// exit (it then starts a replacement; <see cref="WaitForReadyAsync"/> waits for it).
    /// </summary>
    /// <returns>The worker that was killed.</returns>
    public async Task<ClusterWorker> KillWorkerAsync(int id, CancellationToken cancellationToken = default)
    {
        var cluster = await StartedClusterAsync(cancellationToken).ConfigureAwait(false);
        var workers = await CommandAsync(cluster.ListAsync(cancellationToken)).ConfigureAwait(false);
        var running = workers.Where(w => w.Id == id && w.State is InProcessWorkerState.Starting or InProcessWorkerState.Ready).MaxBy(w => w.Generation)
            ?? throw new ArgumentOutOfRangeException(nameof(id), id, $"no running worker {id}; workers: {string.Join(", ", workers.Select(ToPublic))}");
        ProcessSweeper.Kill(running.Pid);
        var target = ToPublic(running);

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(StopMargin);
        try
        {
            while ((await GetWorkersAsync(timeout.Token).ConfigureAwait(false)).Any(w => w.Pid == target.Pid))
            {
                await Task.Delay(20, timeout.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"the supervisor did not see worker {id} (pid {target.Pid}) exit within {StopMargin.TotalSeconds} s.");
        }

        return target;
    }

    /// <summary>
    /// A rolling reload: each worker is replaced by one of the next generation, which must become ready before the
    /// old one drains. Throws <see cref="InvalidOperationException"/> if the reload fails (the old workers keep serving).
    /// </summary>
    public async Task ReloadAsync(CancellationToken cancellationToken = default)
    {
        var cluster = await StartedClusterAsync(cancellationToken).ConfigureAwait(false);
        await CommandAsync(cluster.ReloadAsync(cancellationToken)).ConfigureAwait(false);
    }

    /// <summary>Scales the cluster to <paramref name="workers"/> workers and waits until they are all ready.</summary>
    public async Task ScaleAsync(int workers, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(workers, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(workers, InProcessCluster.MaxWorkers);
        var cluster = await StartedClusterAsync(cancellationToken).ConfigureAwait(false);
        _expectedWorkers = workers;
        await CommandAsync(cluster.ScaleAsync(workers, cancellationToken)).ConfigureAwait(false);
    }

    /// <summary>Stops the cluster (drain, then kill) and makes sure no process it started is left.</summary>
    public async ValueTask DisposeAsync()
    {
        Task? start;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            start = _start;
        }

        if (start is not null)
        {
            try
            {
                await start.ConfigureAwait(false);
            }
            catch (Exception)
            {
                // a failed start has already cleaned up after itself
            }
        }

        await StopAsync().ConfigureAwait(false);
        GC.SuppressFinalize(this);
    }

    /// <summary>Same as <see cref="DisposeAsync"/>, for runners that only dispose synchronously.</summary>
    public void Dispose() => Task.Run(() => DisposeAsync().AsTask()).GetAwaiter().GetResult();

    private ClusterApplicationFactory<TEntryPoint> Configure(Action change)
    {
        lock (_lock)
        {
            if (_start is not null || _disposed)
            {
                throw new InvalidOperationException("The cluster has already started; configure the factory before its first use.");
            }

            change();
        }

        return this;
    }

    private void EnsureStarted() => Task.Run(() => StartAsync()).GetAwaiter().GetResult();

    private async Task<InProcessCluster> StartedClusterAsync(CancellationToken cancellationToken)
    {
        await StartAsync(cancellationToken).ConfigureAwait(false);
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _cluster!;
    }

    // A command the supervisor refused fails with its message and the cluster's recent output.
    private async Task<T> CommandAsync<T>(Task<T> command)
    {
        await CommandAsync((Task)command).ConfigureAwait(false);
        return await command.ConfigureAwait(false);
    }

    private async Task CommandAsync(Task command)
    {
        try
        {
            await command.ConfigureAwait(false);
        }
        catch (InProcessClusterException ex)
        {
            throw Failure(ex.Message);
        }
    }

    private static ClusterWorker ToPublic(InProcessWorker worker) => new(worker.Id, worker.Pid, worker.Generation, worker.State switch
    {
        InProcessWorkerState.Starting => ClusterWorkerState.Starting,
        InProcessWorkerState.Ready => ClusterWorkerState.Ready,
        InProcessWorkerState.Draining => ClusterWorkerState.Draining,
        InProcessWorkerState.Pending => ClusterWorkerState.Pending,
        InProcessWorkerState.Failing => ClusterWorkerState.Failing,
        _ => throw new InvalidOperationException($"unknown worker state {worker.State}"),
    }, worker.Restarts, worker.OpenConnections);

    private async Task StartCoreAsync(CancellationToken cancellationToken)
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("kestrel-cluster runs on Linux only (it passes sockets with SCM_RIGHTS).");
        }

        var assembly = typeof(TEntryPoint).Assembly;
        var dll = assembly.Location;
        if (string.IsNullOrEmpty(dll) || !File.Exists(dll))
        {
            throw new InvalidOperationException($"the app's assembly {assembly.GetName().Name} has no file to run ('{dll}').");
        }

        var appName = assembly.GetName().Name ?? Path.GetFileNameWithoutExtension(dll);
        var variables = new Dictionary<string, string?>(_variables, StringComparer.Ordinal);
        variables.TryAdd("ASPNETCORE_ENVIRONMENT", _environmentName);
        _expectedWorkers = _workers;

        // A private runtime folder per factory: parallel clusters of one app never meet, and nothing is left in the user's.
        _runtimeRoot = Path.Combine(Path.GetTempPath(), "kcf-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(_runtimeRoot, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var options = new InProcessClusterOptions(dll, appName, _contentRoot ?? Path.GetDirectoryName(dll)!, _runtimeRoot)
        {
            Variables = variables,
            Workers = _workers,
            Urls = "http://127.0.0.1:0",
            ReadyTimeout = _readyTimeout,
            KillTimeout = _killTimeout,
        };
        _loggerFactory = new LoggerFactory([_output]);
        try
        {
            try
            {
                _cluster = await InProcessCluster.StartAsync(options, _loggerFactory, _output.Writer, _output.Writer).ConfigureAwait(false);
            }
            catch (InProcessClusterException ex)
            {
                throw new InvalidOperationException($"kestrel-cluster: error: {ex.Message}", ex);
            }

            ProcessSweeper.Register(_cluster.ChannelSocketPath, _runtimeRoot);
            await WaitForReadyCoreAsync(_cluster, cancellationToken).ConfigureAwait(false);
            var address = _cluster.ListenAddresses.FirstOrDefault() ?? throw Failure("the workers are ready but the cluster listens nowhere");
            _serverAddress = new Uri("http://" + address);
        }
        catch
        {
            await StopAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task WaitForReadyCoreAsync(InProcessCluster cluster, CancellationToken cancellationToken)
    {
        var limit = _readyTimeout + StopMargin;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(limit);
        try
        {
            while (true)
            {
                if (cluster.Completion.IsCompleted)
                {
                    throw Failure($"the cluster stopped (exit code {await cluster.Completion.ConfigureAwait(false)})");
                }

                IReadOnlyList<InProcessWorker> workers;
                try
                {
                    workers = await cluster.ListAsync(timeout.Token).ConfigureAwait(false);
                }
                catch (InProcessClusterException)
                {
                    // the cluster is stopping: the next turn reports how it ended
                    workers = [];
                }

                if (workers.Count == _expectedWorkers && workers.All(w => w.State == InProcessWorkerState.Ready))
                {
                    return;
                }

                await Task.Delay(25, timeout.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"the cluster's {_expectedWorkers} workers were not all ready within {limit.TotalSeconds} s. Recent output:\n{_output.Recent()}");
        }
    }

    private InvalidOperationException Failure(string message) => new($"{message}. Recent output:\n{_output.Recent()}");

    private async Task StopAsync()
    {
        if (_cluster is { } cluster)
        {
            try
            {
                await cluster.DisposeAsync().AsTask().WaitAsync(_killTimeout + StopMargin).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // the sweep below kills what the supervisor did not
            }

            // Whatever the supervisor's state, nothing that carries this cluster's channel survives.
            var deadline = DateTime.UtcNow + StopMargin;
            while (ProcessSweeper.KillAll(cluster.ChannelSocketPath).Count > 0 && DateTime.UtcNow < deadline)
            {
                await Task.Delay(20).ConfigureAwait(false);
            }

            ProcessSweeper.Unregister(cluster.ChannelSocketPath);
        }

        if (_runtimeRoot is not null)
        {
            try
            {
                Directory.Delete(_runtimeRoot, recursive: true);
            }
            catch (IOException)
            {
                // left for the OS's temp cleanup
            }
        }

        _loggerFactory?.Dispose();
    }
}
