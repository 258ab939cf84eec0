using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

/// <summary>
/// pm2 clusters an unmodified Node app; kestrel-cluster runs an app that never heard of it: the supervisor's
/// startup hook adds the transport to a framework-dependent app that lacks `builder.WebHost.UseClusterTransport()`.
/// </summary>
public sealed partial class UnchangedAppTests(TemplateApps apps, ITestOutputHelper output) : IClassFixture<TemplateApps>
{
    [Fact]
    public async Task WebTemplate_WithoutTheLine_BothWorkersJoinAndAnswer()
    {
        var app = await apps.GetAsync("web");
        Assert.False(File.Exists(Path.Combine(Path.GetDirectoryName(app.Dll)!, "KestrelCluster.Transport.dll")), "the template app must not carry the transport");

        await using var run = ClusterRun.Start(output, ["-w", "2", "--urls", "http://127.0.0.1:0", "--", TestPaths.Dotnet, app.Dll], appendSampleCommand: false, workingDirectory: app.Folder);
        // Ready is something only a worker on the supervisor's channel can report.
        await run.WaitForLineAsync(AllReady(), ClusterRun.StartTimeout);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{run.Port}");
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal("Hello World!", await client.GetStringAsync("/"));
        }

        var workers = await run.ListAsync();
        Assert.Equal(2, workers.Select(w => w.Pid).Distinct().Count());
        Assert.All(workers, w => Assert.True(w.TotalConnections >= 1, $"worker {w.Id} (pid {w.Pid}) served no connection"));
        Assert.Equal([0, 1], workers.Select(w => w.Id).Order());
        Assert.All(workers, w => Assert.Equal(w.Id.ToString(), ProcessInfo.EnvironmentOf(w.Pid).GetValueOrDefault("KESTREL_CLUSTER_WORKER_ID")));
    }

    // The templates of the issue, each clustered without the line: every worker serves a request.
    [Theory]
    [InlineData("webapi", "", "/weatherforecast")]
    [InlineData("webapi", "--use-controllers", "/weatherforecast")]
    [InlineData("mvc", "", "/")]
    [InlineData("grpc", "", "/greet.Greeter/SayHello")]
    public async Task Template_WithoutTheLine_EveryWorkerAnswers(string template, string options, string path)
    {
        var app = await apps.GetAsync(template, options.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        var grpc = template == "grpc";
        // gRPC needs HTTP/2; without TLS that is h2c, which Kestrel speaks on an endpoint limited to HTTP/2.
        var environment = grpc ? new Dictionary<string, string> { ["Kestrel__EndpointDefaults__Protocols"] = "Http2" } : null;

        await using var run = ClusterRun.Start(output, ["-w", "2", "--urls", "http://127.0.0.1:0", "--", TestPaths.Dotnet, app.Dll], environment, appendSampleCommand: false, workingDirectory: app.Folder);
        await run.WaitForLineAsync(AllReady(), ClusterRun.StartTimeout);
        for (var i = 0; i < 4; i++)
        {
            // A new connection each time, so round-robin hands them to both workers.
            using var client = Http.NewConnectionClient($"http://127.0.0.1:{run.Port}");
            if (grpc)
            {
                Assert.Equal("0", await SayHelloAsync(client, path));
            }
            else
            {
                using var response = await client.GetAsync(path);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }
        }

        var workers = await run.ListAsync();
        Assert.Equal(2, workers.Select(w => w.Pid).Distinct().Count());
        Assert.All(workers, w => Assert.True(w.TotalConnections >= 1, $"worker {w.Id} (pid {w.Pid}) served no connection"));
    }

    // One unary call over h2c (prior knowledge): HelloRequest { name = "x" } in a gRPC frame; returns grpc-status.
    private static async Task<string?> SayHelloAsync(HttpClient client, string path)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ByteArrayContent([0, 0, 0, 0, 3, 0x0A, 0x01, (byte)'x']),
        };
        request.Content.Headers.ContentType = new("application/grpc");
        request.Headers.TE.ParseAdd("trailers");
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        _ = await response.Content.ReadAsByteArrayAsync();
        return response.TrailingHeaders.TryGetValues("grpc-status", out var status) ? status.Single() : response.Headers.TryGetValues("grpc-status", out status) ? status.Single() : null;
    }

    [Fact]
    public async Task SampleWithTheLine_UnderTheHook_LoadsOnlyItsOwnTransport()
    {
        await using var run = await ClusterRun.StartReadyAsync(output, workers: 2);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{run.Port}");
        var answeredBy = new HashSet<int>();
        for (var i = 0; i < 4; i++)
        {
            answeredBy.Add(await Http.GetPidAsync(client));
        }

        Assert.Equal(run.WorkerPids.Order(), answeredBy.Order());
        foreach (var pid in run.WorkerPids)
        {
            // The hook ran, and yet the one transport in the process is the app's own copy.
            Assert.Single(MappedFiles(pid, "KestrelCluster.StartupHook.dll"));
            Assert.Equal([Path.Combine(Path.GetDirectoryName(TestPaths.SampleDll)!, "KestrelCluster.Transport.dll")], MappedFiles(pid, "KestrelCluster.Transport.dll"));
        }

        Assert.DoesNotContain(run.Lines, l => l.Contains("broke the channel protocol") || l.Contains("exited unexpectedly") || l.Contains("fail:"));
        Assert.Equal(2, run.Lines.Count(l => WorkerReady().IsMatch(l)));
    }

    [Fact]
    public async Task WithoutTheLine_HookOff_GivesUpNamingTheLineToAdd()
    {
        var app = await apps.GetAsync("web");
        // The port is taken, so a worker that binds it itself (no transport) fails at once, as it would beside a
        // supervisor that already listens there.
        using var taken = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        taken.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        taken.Listen();
        var port = ((IPEndPoint)taken.LocalEndPoint!).Port;

        await using var run = ClusterRun.Start(output, ["-w", "1", "--urls", $"http://127.0.0.1:{port}", "--", TestPaths.Dotnet, app.Dll],
            new Dictionary<string, string> { ["KESTREL_CLUSTER_STARTUP_HOOK"] = "0" }, appendSampleCommand: false, workingDirectory: app.Folder);

        Assert.Equal(1, await run.WaitForExitAsync(TimeSpan.FromSeconds(90)));
        var error = Assert.Single(run.ErrorLines, l => l.StartsWith("kestrel-cluster: error:"));
        Assert.Contains("never connected to the supervisor and bound its ports itself", error);
        Assert.Contains("builder.WebHost.UseClusterTransport()", error);
    }

    // Paths of the files named <paramref name="fileName"/> that the process has mapped (the assemblies it loaded).
    private static List<string> MappedFiles(int pid, string fileName) => [.. File.ReadLines($"/proc/{pid}/maps")
        .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        .Where(f => f.Length >= 6 && Path.GetFileName(f[5]) == fileName)
        .Select(f => f[5])
        .Distinct()];

    [GeneratedRegex("All 2 workers ready")]
    private static partial Regex AllReady();

    [GeneratedRegex(@"Worker \d+ ready \(pid")]
    private static partial Regex WorkerReady();
}
