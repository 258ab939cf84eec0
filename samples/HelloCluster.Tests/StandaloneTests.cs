using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using HelloCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace HelloCluster.Tests;

/// <summary>
/// The sample run alone (`dotnet HelloCluster.dll`), with no supervisor: UseClusterTransport() leaves
/// Kestrel's own transport in place and the app binds its port itself.
/// </summary>
public sealed class StandaloneTests(ITestOutputHelper output)
{
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task GetRoot_AppRunAloneWithoutSupervisor_ReturnsHelloFromChildPid()
    {
        await using var app = await StandaloneApp.StartAsync(output);
        using var client = new HttpClient { BaseAddress = app.Address, Timeout = RequestTimeout };

        using var response = await client.GetAsync("/");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal($"Hello from {app.Pid}", await response.Content.ReadAsStringAsync());

        Assert.True(await app.KillAsync(), $"HelloCluster (pid {app.Pid}) was still running {StandaloneApp.ExitTimeout.TotalSeconds} s after it was killed");
        Assert.False(StandaloneApp.IsAlive(app.Pid));
    }

    [Fact]
    public async Task GetCluster_AppRunAloneWithoutSupervisor_ReportsOwnAddressAndNoWorkerId()
    {
        await using var app = await StandaloneApp.StartAsync(output);
        using var client = new HttpClient { BaseAddress = app.Address, Timeout = RequestTimeout };

        var cluster = await client.GetFromJsonAsync<JsonElement>("/cluster");

        Assert.Equal(app.Pid, cluster.GetProperty("pid").GetInt32());
        Assert.Equal(JsonValueKind.Null, cluster.GetProperty("workerId").ValueKind);
        Assert.Equal(JsonValueKind.Null, cluster.GetProperty("generation").ValueKind);
        var addresses = cluster.GetProperty("addresses").EnumerateArray().Select(a => a.GetString()).ToList();
        Assert.Equal([app.Address.GetLeftPart(UriPartial.Authority)], addresses);
    }
}
