using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Xunit.Abstractions;

namespace KestrelCluster.Testing.Tests;

/// <summary>A `dotnet new webapi --use-controllers` app with UseClusterTransport(), tested as a real cluster.</summary>
public sealed class ControllersAppTests : IClassFixture<ControllersAppTests.Cluster>
{
    private readonly Cluster _cluster;
    private readonly ITestOutputHelper _output;

    public ControllersAppTests(Cluster cluster, ITestOutputHelper output)
    {
        _cluster = cluster;
        _output = output;
        // The fixture outlives each test: its output goes to the test that runs now.
        cluster.WithOutput(output.WriteLine);
    }

    /// <summary>
    /// The fixture: the app's settings and environment for its workers, given the factory's way. As an xunit v2
    /// IAsyncLifetime, the cluster is up before the first test.
    /// </summary>
    public sealed class Cluster : ClusterApplicationFactory<Program>, IAsyncLifetime
    {
        public Cluster()
        {
            WithWorkers(2);
            WithEnvironment("Staging");
            WithSetting("Greeting:Text", "hello from the factory");
        }

        Task IAsyncLifetime.InitializeAsync() => StartAsync();

        Task IAsyncLifetime.DisposeAsync() => DisposeAsync().AsTask();
    }

    [Fact]
    public async Task GetWeatherForecast_Cluster_ReturnsTheTemplatesFiveForecasts()
    {
        using var client = _cluster.CreateClient();

        using var response = await client.GetAsync("/WeatherForecast");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var forecasts = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(5, forecasts.GetArrayLength());
        Assert.All(forecasts.EnumerateArray(), f => Assert.True(f.TryGetProperty("temperatureC", out _)));
    }

    [Fact]
    public async Task GetWorker_SettingAndEnvironmentFromFactory_ReachEveryWorker()
    {
        using var client = _cluster.CreateClient();
        client.DefaultRequestHeaders.ConnectionClose = true;
        var workers = await _cluster.GetWorkersAsync();

        var answers = new Dictionary<int, JsonElement>();
        for (var i = 0; i < 10; i++)
        {
            var worker = await client.GetFromJsonAsync<JsonElement>("/Worker");
            answers[worker.GetProperty("pid").GetInt32()] = worker;
        }

        Assert.Equal(workers.Select(w => w.Pid).Order(), answers.Keys.Order());
        Assert.All(answers.Values, worker =>
        {
            Assert.Equal("Staging", worker.GetProperty("environment").GetString());
            Assert.Equal("hello from the factory", worker.GetProperty("greeting").GetString());
            // Default content root: the app's output folder (here the test's, where its files are copied).
            Assert.Equal(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory), Path.TrimEndingDirectorySeparator(worker.GetProperty("contentRoot").GetString()!));
        });
        Assert.Equal(workers.Select(w => w.Id.ToString()).Order(), answers.Values.Select(w => w.GetProperty("workerId").GetString()).Order());
    }

    [Fact]
    public async Task PostEcho_ModelBindingAndValidation_WorkAsInOneProcess()
    {
        using var client = _cluster.CreateClient();

        using var ok = await client.PostAsJsonAsync("/Worker/echo", new { text = "ping" });
        using var missing = await client.PostAsJsonAsync("/Worker/echo", new { });

        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        var reply = await ok.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("ping", reply.GetProperty("text").GetString());
        Assert.Contains(reply.GetProperty("pid").GetInt32(), (await _cluster.GetWorkersAsync()).Select(w => w.Pid));
        // [ApiController] validation: a missing required property is a 400 problem response.
        Assert.Equal(HttpStatusCode.BadRequest, missing.StatusCode);
        Assert.Equal("application/problem+json", missing.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task GetWorker_ContentRootGiven_WorkersRunFromTheProjectFolder()
    {
        var projectFolder = Path.Combine(TestPaths.RepoRoot, "test", "TestApps", "ControllersApp");
        await using var cluster = new ClusterApplicationFactory<Program>().WithWorkers(1).WithContentRoot(projectFolder).WithOutput(_output.WriteLine);
        using var client = cluster.CreateClient();

        var worker = await client.GetFromJsonAsync<JsonElement>("/Worker");

        Assert.Equal(Path.TrimEndingDirectorySeparator(projectFolder), Path.TrimEndingDirectorySeparator(worker.GetProperty("contentRoot").GetString()!));
        Assert.Equal("Development", worker.GetProperty("environment").GetString());
        Assert.Equal(JsonValueKind.Null, worker.GetProperty("greeting").ValueKind);
    }
}
