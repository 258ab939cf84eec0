using System.Reflection;
using Microsoft.AspNetCore.Hosting;

[assembly: HostingStartup(typeof(KestrelCluster.StartupHook.ClusterHostingStartup))]

namespace KestrelCluster.StartupHook;

// Does for an app what its own `builder.WebHost.UseClusterTransport()` would. The transport is found by name, not
// referenced: the app's copy when it has one (whatever its version), else the one shipped beside this assembly.
internal sealed class ClusterHostingStartup : IHostingStartup
{
    internal const string TransportAssembly = "KestrelCluster.Transport";

    public void Configure(IWebHostBuilder builder)
    {
        var transport = Assembly.Load(new AssemblyName(TransportAssembly));
        // A transport from before the hook cannot tell that the app's line registers it again: leave that app to its line.
        if (transport.GetType("KestrelCluster.Transport.ClusterTransportMarker") is null)
        {
            Console.Error.WriteLine($"kestrel-cluster startup hook: the app's {transport.GetName()} predates the hook; it runs as the app configures it.");
            return;
        }

        var useClusterTransport = transport.GetType("Microsoft.AspNetCore.Hosting.ClusterWebHostBuilderExtensions", throwOnError: true)!
            .GetMethod("UseClusterTransport", BindingFlags.Public | BindingFlags.Static, [typeof(IWebHostBuilder), typeof(Action<>).MakeGenericType(transport.GetType("KestrelCluster.ClusterTransportOptions", throwOnError: true)!)])
            ?? throw new MissingMethodException("ClusterWebHostBuilderExtensions", "UseClusterTransport");
        useClusterTransport.Invoke(null, [builder, null]);
    }
}
