using Microsoft.Extensions.Hosting;

namespace KestrelCluster.Transport;

// A worker is ready when its host has started: every endpoint bound and ApplicationStarted fired.
internal sealed class ClusterReadinessService(SupervisorChannel channel, IHostApplicationLifetime lifetime) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStarted.Register(() => _ = channel.ReportReadyAsync(lifetime.ApplicationStopping));
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
