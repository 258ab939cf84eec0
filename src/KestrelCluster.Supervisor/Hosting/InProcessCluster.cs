using KestrelCluster.Protocol;
using KestrelCluster.Supervisor.Cli;
using KestrelCluster.Supervisor.Control;
using KestrelCluster.Supervisor.Workers;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Supervisor.Hosting;

// The one seam KestrelCluster.Testing (ClusterApplicationFactory) uses, through InternalsVisibleTo: a supervisor
// hosted in a test process, whose workers run an app's dll, driven as the control socket drives it. The testing
// package names only the types in this file, so every other internal of the supervisor may change or move freely.
internal sealed class InProcessCluster : IAsyncDisposable
{
    /// <summary>The most workers a cluster may have (also the CLI's limit for <c>--workers</c> and <c>scale</c>).</summary>
    public const int MaxWorkers = CommandLine.MaxWorkers;

    private readonly ClusterHost _host;

    private InProcessCluster(ClusterHost host) => _host = host;

    /// <summary>The run's exit code (0 after a clean stop), once every worker is gone.</summary>
    public Task<int> Completion => _host.Completion;

    /// <summary>The variable every worker process has <see cref="ChannelSocketPath"/> in.</summary>
    public const string ChannelVariable = ClusterEnvironment.Channel;

    /// <summary>Every worker process has it in <see cref="ChannelVariable"/>: it finds them, whatever their pid.</summary>
    public string ChannelSocketPath => _host.ChannelSocketPath;

    /// <summary>The addresses the supervisor bound for the workers, e.g. <c>127.0.0.1:41234</c>.</summary>
    public IReadOnlyList<string> ListenAddresses => _host.ListenAddresses;

    /// <summary>
    /// Starts the supervisor and its workers (<c>dotnet &lt;AppDll&gt;</c>); returns without waiting for them to be ready.
    /// Throws <see cref="InProcessClusterException"/> for settings the supervisor refuses.
    /// </summary>
    public static async Task<InProcessCluster> StartAsync(InProcessClusterOptions options, ILoggerFactory loggerFactory, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(options);
        var command = new WorkerCommand(WorkerCommand.DotnetHostPath(), [options.AppDll], options.WorkingDirectory, options.AppName, options.Variables);
        var run = new RunOptions
        {
            Workers = options.Workers,
            Name = ClusterHost.SafeName(options.AppName),
            Urls = options.Urls,
            ReadyTimeout = options.ReadyTimeout,
            KillTimeout = options.KillTimeout,
        };
        try
        {
            // Never cancelled: the cluster stops through DisposeAsync.
            return new InProcessCluster(await ClusterHost.StartAsync(run, loggerFactory, output, error, CancellationToken.None, command, options.RuntimeRoot).ConfigureAwait(false));
        }
        catch (Exception ex) when (ClusterHost.IsRefusedStart(ex))
        {
            throw new InProcessClusterException(ex.Message, ex);
        }
    }

    /// <summary>The workers as <c>kestrel-cluster list</c> shows them, ordered by id, then generation.</summary>
    public async Task<IReadOnlyList<InProcessWorker>> ListAsync(CancellationToken cancellationToken)
    {
        var response = await SendAsync(new ControlRequest(ControlCommands.List), cancellationToken).ConfigureAwait(false);
        return [.. (response.Workers ?? []).Select(w => new InProcessWorker(w.Id, w.Pid, w.Generation, StateOf(w.State), w.Restarts, w.OpenConnections))];
    }

    /// <summary>A rolling reload; returns once it has finished. Throws <see cref="InProcessClusterException"/> if it failed.</summary>
    public Task ReloadAsync(CancellationToken cancellationToken) => SendAsync(new ControlRequest(ControlCommands.Reload), cancellationToken);

    /// <summary>Scales to <paramref name="workers"/> workers. Throws <see cref="InProcessClusterException"/> if the supervisor refused.</summary>
    public Task ScaleAsync(int workers, CancellationToken cancellationToken) => SendAsync(new ControlRequest(ControlCommands.Scale, workers), cancellationToken);

    /// <summary>Stops gracefully (drain up to the kill timeout, then kill) and waits until every worker is gone.</summary>
    public ValueTask DisposeAsync() => _host.DisposeAsync();

    private async Task<ControlResponse> SendAsync(ControlRequest request, CancellationToken cancellationToken)
    {
        var response = await _host.SendAsync(request, cancellationToken).ConfigureAwait(false);
        return response.Ok ? response : throw new InProcessClusterException(response.Message);
    }

    // The states `list` reports; a worker that has exited is no longer listed.
    private static InProcessWorkerState StateOf(string state) => state switch
    {
        "starting" => InProcessWorkerState.Starting,
        "ready" => InProcessWorkerState.Ready,
        "draining" => InProcessWorkerState.Draining,
        "pending" => InProcessWorkerState.Pending,
        "failing" => InProcessWorkerState.Failing,
        _ => throw new InProcessClusterException($"the supervisor listed a worker in an unknown state '{state}'"),
    };
}

/// <summary>What <see cref="InProcessCluster.StartAsync"/> needs: the app and the few settings a test chooses (their defaults are the factory's).</summary>
internal sealed record InProcessClusterOptions(string AppDll, string AppName, string WorkingDirectory, string RuntimeRoot)
{
    public required IReadOnlyDictionary<string, string?> Variables { get; init; }

    public required int Workers { get; init; }

    public required string Urls { get; init; }

    public required TimeSpan ReadyTimeout { get; init; }

    public required TimeSpan KillTimeout { get; init; }
}

/// <summary>One row of <see cref="InProcessCluster.ListAsync"/>; <see cref="Pid"/> is 0 for a slot with no process.</summary>
internal sealed record InProcessWorker(int Id, int Pid, int Generation, InProcessWorkerState State, int Restarts, int OpenConnections);

internal enum InProcessWorkerState
{
    Starting,
    Ready,
    Draining,
    Pending,
    Failing,
}

/// <summary>The supervisor refused a setting or a command; the message is its error line.</summary>
internal sealed class InProcessClusterException : Exception
{
    public InProcessClusterException(string message)
        : base(message)
    {
    }

    public InProcessClusterException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
