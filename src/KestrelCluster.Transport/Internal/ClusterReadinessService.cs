using KestrelCluster.Protocol;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KestrelCluster.Transport;

// A worker is ready when its host has started: every endpoint bound and ApplicationStarted fired. The app's
// endpoints are all mapped by then, so the Ready frame also says whether it serves SignalR or Blazor Server.
internal sealed class ClusterReadinessService(SupervisorChannel channel, IHostApplicationLifetime lifetime, IServiceProvider services) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStarted.Register(() => _ = channel.ReportReadyAsync(FeaturesOf(services), lifetime.ApplicationStopping));
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    // Every SignalR hub (Blazor Server's _blazor hub too) and connection handler maps a negotiate endpoint.
    internal static WorkerFeatures FeaturesOf(IServiceProvider services)
        => services.GetService<EndpointDataSource>()?.Endpoints.Any(e => e.Metadata.GetMetadata<NegotiateMetadata>() is not null) == true
            ? WorkerFeatures.RealTimeEndpoints
            : WorkerFeatures.None;
}
