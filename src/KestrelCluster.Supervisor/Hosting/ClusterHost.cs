using KestrelCluster.Supervisor.Cli;
using KestrelCluster.Supervisor.Control;
using KestrelCluster.Supervisor.Runtime;
using KestrelCluster.Supervisor.Workers;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Supervisor.Hosting;

// One supervisor run without the process around it: Program adds signals and the console, and
// InProcessCluster hosts it inside a test process for KestrelCluster.Testing.
internal sealed class ClusterHost : IAsyncDisposable
{
    private readonly ClusterSupervisor _supervisor;

    private ClusterHost(ClusterSupervisor supervisor, ProjectPublisher? publisher, RuntimeDirectory runtimeDirectory, CancellationToken cancellationToken)
    {
        _supervisor = supervisor;
        ChannelSocketPath = runtimeDirectory.ChannelSocketPath;
        Completion = Task.Run(async () =>
        {
            try
            {
                return await supervisor.RunAsync(cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                // Kills whatever is left, then removes the published apps and the sockets.
                supervisor.Dispose();
                publisher?.Dispose();
                runtimeDirectory.Dispose();
            }
        }, CancellationToken.None);
    }

    /// <summary>The run's exit code (0 after a clean stop), once every worker is gone.</summary>
    public Task<int> Completion { get; }

    /// <summary>Every worker has it in <c>KESTREL_CLUSTER_CHANNEL</c>: it finds them, whatever their pid.</summary>
    public string ChannelSocketPath { get; }

    public IReadOnlyList<string> ListenAddresses => _supervisor.ListenAddresses;

    /// <summary>The failures of <see cref="StartAsync"/> that leave nothing started: said in one line, the run never began.</summary>
    public static bool IsRefusedStart(Exception exception)
        => exception is CommandLineException or ClusterAlreadyRunningException or RuntimeFolderException or BuildFailedException;

    /// <summary>
    /// Resolves the workers' command (unless given), creates the runtime folder, publishes a --project app into it
    /// and starts the supervisor. Throws <see cref="CommandLineException"/> for bad input, <see cref="BuildFailedException"/>,
    /// <see cref="ClusterAlreadyRunningException"/> or <see cref="RuntimeFolderException"/>;
    /// cancelling the token later stops the run gracefully.
    /// </summary>
    public static async Task<ClusterHost> StartAsync(
        RunOptions options,
        ILoggerFactory loggerFactory,
        TextWriter output,
        TextWriter error,
        CancellationToken cancellationToken,
        WorkerCommand? command = null,
        string? runtimeRoot = null,
        Upgrade.UpgradeHandover? handover = null)
    {
        var project = command is null && options.Command.Count == 0 ? WorkerCommand.FindProject(options) : null;
        command ??= project is null ? WorkerCommand.ForCommand(options) : null;
        var appName = command?.AppName ?? Path.GetFileNameWithoutExtension(project!);
        // Created first: it refuses a second cluster of the same name before its publish folder is touched.
        // An upgrade's supervisor keeps the cluster's name and folder: `list` and `stop` find it where they found the old one.
        var runtimeDirectory = handover is null
            ? RuntimeDirectory.Create(options.Name ?? SafeName(appName), runtimeRoot, options.ControlGroup)
            : RuntimeDirectory.OpenForUpgrade(handover.ClusterName, runtimeRoot, options.ControlGroup);
        ProjectPublisher? publisher = null;
        ClusterSupervisor supervisor;
        try
        {
            if (project is not null)
            {
                publisher = new ProjectPublisher(project, Path.Combine(runtimeDirectory.Path, PublishFolderName), WorkerCommand.RuntimeDefaultsFor(options));
                await error.WriteLineAsync($"kestrel-cluster: publishing {project} (Release)").ConfigureAwait(false);
                var first = await publisher.PublishAsync(handover?.Generation ?? 1, cancellationToken).ConfigureAwait(false);
                if (first.Command is null)
                {
                    await error.WriteAsync(first.Output).ConfigureAwait(false);
                    throw new BuildFailedException($"the build of {project} failed: {first.Error}");
                }

                command = first.Command;
            }

            cancellationToken.ThrowIfCancellationRequested();
            supervisor = new ClusterSupervisor(options, command!, runtimeDirectory, loggerFactory.CreateLogger("kestrel-cluster"), output, error, publisher: publisher, handover: handover);
        }
        catch
        {
            publisher?.Dispose();
            runtimeDirectory.Dispose();
            throw;
        }

        return new ClusterHost(supervisor, publisher, runtimeDirectory, cancellationToken);
    }

    // Below the runtime folder: one folder per published generation.
    public const string PublishFolderName = "app";

    public void RequestStop(string reason) => _supervisor.RequestStop(reason);

    public void RequestReload(string reason) => _supervisor.RequestReload(reason);

    public void RequestUpgrade(string reason) => _supervisor.RequestUpgrade(reason);

    /// <summary>A control request (list, reload, scale, stop) through the supervisor loop, as the control socket sends it.</summary>
    public async Task<ControlResponse> SendAsync(ControlRequest request, CancellationToken cancellationToken)
    {
        if (Completion.IsCompleted)
        {
            return ControlResponse.Failure("the cluster has stopped");
        }

        var response = _supervisor.ExecuteAsync(request);
        // A request posted after the loop ended is never answered.
        var first = await Task.WhenAny(response, Completion).WaitAsync(cancellationToken).ConfigureAwait(false);
        return first == response ? await response.ConfigureAwait(false) : ControlResponse.Failure("the cluster has stopped");
    }

    public static string SafeName(string appName)
    {
        var name = new string(appName.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '-').ToArray());
        return name.Length is > 0 and <= 64 ? name : "app";
    }

    /// <summary>Stops gracefully (drain up to the kill timeout, then kill) and waits until every worker is gone.</summary>
    public async ValueTask DisposeAsync()
    {
        _supervisor.RequestStop("disposed");
        await Completion.ConfigureAwait(false);
    }
}
