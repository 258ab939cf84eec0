using KestrelCluster.Protocol;
using KestrelCluster.Transport;
using KestrelCluster.Transport.Backplane;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>A SignalR backplane for the workers of a kestrel-cluster: no Redis, the supervisor relays.</summary>
public static class ClusterSignalRBuilderExtensions
{
    /// <summary>
    /// Makes every hub behave as in one process when the app runs as kestrel-cluster workers: <c>Clients.All</c>,
    /// groups, users, single connections, group membership and client results reach connections on every worker,
    /// through the supervisor. Needs <c>UseClusterTransport()</c>. Run alone, it changes nothing: the default
    /// lifetime manager serves the app.
    /// </summary>
    public static ISignalRServerBuilder AddKestrelCluster(this ISignalRServerBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable(ClusterEnvironment.Channel)))
        {
            return builder;
        }

        builder.Services.TryAddSingleton(provider => new HubBackplane(
            provider.GetService<SupervisorChannel>() ?? throw new InvalidOperationException("AddKestrelCluster() needs the cluster transport: call builder.WebHost.UseClusterTransport()."),
            provider.GetRequiredService<ConnectionDrain>(),
            provider.GetRequiredService<Hosting.IHostApplicationLifetime>(),
            provider.GetRequiredService<Logging.ILogger<HubBackplane>>()));
        // AddSingleton, not TryAdd: AddSignalR() has registered the default manager already; the last one wins.
        builder.Services.AddSingleton(typeof(HubLifetimeManager<>), typeof(ClusterHubLifetimeManager<>));
        return builder;
    }
}
