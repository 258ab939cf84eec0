using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Mvc.Testing;

namespace HelloCluster.Tests;

/// <summary>
/// A plain WebApplicationFactory test of the sample, written as if UseClusterTransport() were not there:
/// outside a supervisor the extension changes nothing, so the in-memory TestServer serves the app.
/// </summary>
public sealed class InMemoryTests(WebApplicationFactory<Program> factory) : IClassFixture<WebApplicationFactory<Program>>
{
    [Fact]
    public async Task GetRoot_InMemoryTestServer_ReturnsHelloFromTestProcess()
    {
        using var client = factory.CreateClient();

        using var response = await client.GetAsync("/");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal($"Hello from {Environment.ProcessId}", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task GetCluster_InMemoryTestServer_ReportsNoWorkerIdentity()
    {
        using var client = factory.CreateClient();

        using var response = await client.GetAsync("/cluster");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var cluster = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(Environment.ProcessId, cluster.GetProperty("pid").GetInt32());
        Assert.Equal(JsonValueKind.Null, cluster.GetProperty("workerId").ValueKind);
        Assert.Equal(JsonValueKind.Null, cluster.GetProperty("generation").ValueKind);
        Assert.Equal(JsonValueKind.Array, cluster.GetProperty("addresses").ValueKind);
    }
}
