using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using ClusterOptions = KestrelCluster.ClusterTransportOptions;
using IClusterWorker = KestrelCluster.IClusterWorker;
using ClusterExtensions = Microsoft.AspNetCore.Hosting.ClusterWebHostBuilderExtensions;

namespace KestrelCluster.Tests.Transport;

public sealed class RegistrationTests
{
    // The supervisor's startup hook registers the transport as the host is built; the app's own line runs after it.
    [Fact]
    public void UseClusterTransport_Twice_RegistersOnceAndKeepsBothConfigurations()
    {
        var builder = WebApplication.CreateSlimBuilder();

        ClusterExtensions.UseClusterTransport(builder.WebHost);
        ClusterExtensions.UseClusterTransport(builder.WebHost, o => o.DrainTimeout = TimeSpan.FromSeconds(7));

        Assert.Single(builder.Services, d => d.ServiceType == typeof(IClusterWorker));
        using var app = builder.Build();
        Assert.Equal(TimeSpan.FromSeconds(7), app.Services.GetRequiredService<IOptions<ClusterOptions>>().Value.DrainTimeout);
    }
}
