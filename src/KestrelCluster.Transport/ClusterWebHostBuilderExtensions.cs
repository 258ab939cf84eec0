using KestrelCluster;
using KestrelCluster.Protocol;
using KestrelCluster.Transport;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Microsoft.AspNetCore.Hosting;

/// <summary>Extensions that let an ASP.NET Core app run as a kestrel-cluster worker.</summary>
public static class ClusterWebHostBuilderExtensions
{
    // Well within the supervisor's default --kill-timeout (30 s), which also has to cover Kestrel's own shutdown.
    private static readonly TimeSpan MaxDrainTimeout = TimeSpan.FromSeconds(20);

    /// <summary>
    /// Serves the app's endpoints through the kestrel-cluster supervisor when the process is one of its
    /// workers: the supervisor owns the listening sockets and passes each accepted connection to a worker.
    /// When the process is not started by a supervisor, nothing changes: Kestrel binds as usual.
    /// </summary>
    public static IWebHostBuilder UseClusterTransport(this IWebHostBuilder builder, Action<ClusterTransportOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);

        return builder.ConfigureServices(services =>
        {
            var options = services.AddOptions<ClusterTransportOptions>();
            if (configure is not null)
            {
                options.Configure(configure);
            }

            // The supervisor's startup hook registers the transport before the app's own line runs (or after
            // it): whichever comes second only adds its options.
            if (services.Any(d => d.ServiceType == typeof(ClusterTransportMarker)))
            {
                return;
            }

            services.AddSingleton<ClusterTransportMarker>();
            options
                .Validate(o => o.SupervisorTimeout > TimeSpan.Zero, "ClusterTransportOptions.SupervisorTimeout must be positive.")
                .Validate(o => o.DrainTimeout >= TimeSpan.Zero && o.DrainTimeout <= MaxDrainTimeout, $"ClusterTransportOptions.DrainTimeout must be between 0 and {MaxDrainTimeout.TotalSeconds} seconds.");

            if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable(ClusterEnvironment.Channel)))
            {
                services.AddSingleton<IClusterWorker, StandaloneWorker>();
                return;
            }

            services.AddSingleton<ConnectionDrain>();
            services.AddSingleton<IStartupFilter, DrainStartupFilter>();
            services.AddSingleton<IStartupFilter, AffinityCookieStartupFilter>();
            services.AddSingleton<SupervisorChannel>();
            services.AddSingleton<IClusterWorker>(provider =>
            {
                var channel = provider.GetRequiredService<SupervisorChannel>();
                var worker = new SupervisedWorker(channel, provider.GetRequiredService<IHostApplicationLifetime>());
                channel.MessageReceived = worker.Deliver;
                return worker;
            });
            if (Environment.GetEnvironmentVariable(ClusterEnvironment.DataProtectionKeys) is { Length: > 0 } keys)
            {
                // Inert unless the app uses data protection; then before the server starts.
                services.AddSingleton(provider => new ClusterKeyRing(keys, provider, provider.GetRequiredService<IHostEnvironment>(), provider.GetRequiredService<ILoggerFactory>()));
                services.AddSingleton<IPostConfigureOptions<KeyManagementOptions>>(provider => provider.GetRequiredService<ClusterKeyRing>());
                services.AddSingleton<IPostConfigureOptions<DataProtectionOptions>>(provider => provider.GetRequiredService<ClusterKeyRing>());
                services.AddHostedService<ClusterKeyRingStartup>();
            }

            // AddSingleton, not TryAdd: Kestrel asks the last registered factory first, and UseSockets() is already there.
            services.AddSingleton<IConnectionListenerFactory, ClusterConnectionListenerFactory>();
            services.AddHostedService<ClusterReadinessService>();
            services.AddSingleton<IHostLifetime, ClusterWorkerLifetime>();
        });
    }
}
