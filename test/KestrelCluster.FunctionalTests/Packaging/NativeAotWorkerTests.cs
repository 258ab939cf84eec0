using System.Net.Http.Json;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Packaging;

/// <summary>
/// A NativeAOT app as a user makes one: `dotnet new webapiaot`, the one line, a project reference to the
/// transport and its own source-generated JSON context; published NativeAOT and run as 2 workers.
/// </summary>
public sealed partial class NativeAotWorkerTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromMinutes(3);
    private static readonly TimeSpan PublishTimeout = TimeSpan.FromMinutes(8);

    private readonly TemporaryFolder _folder = new();

    private sealed record Received(int Pid, string[] Notes);

    [Fact]
    public async Task NativeAotPublish_WorkerBroadcastsWithSourceGeneratedJson_OtherWorkerReceivesIt()
    {
        var project = Path.Combine(_folder.Path, "AotApp");
        var (newExit, newOutput) = await RunAsync(TestPaths.Dotnet, ["new", "webapiaot", "-n", "AotApp", "-o", project], _folder.Path, CommandTimeout);
        Assert.True(newExit == 0, $"dotnet new webapiaot failed ({newExit}): {newOutput}");
        var (referenceExit, referenceOutput) = await RunAsync(TestPaths.Dotnet,
            ["add", project, "reference", Path.Combine(TestPaths.RepoRoot, "src", "KestrelCluster.Transport", "KestrelCluster.Transport.csproj")], _folder.Path, CommandTimeout);
        Assert.True(referenceExit == 0, $"dotnet add reference failed ({referenceExit}): {referenceOutput}");
        File.WriteAllText(Path.Combine(project, "Program.cs"), AppProgram);

        var publish = Path.Combine(_folder.Path, "publish");
        var rid = RuntimeInformation.OSArchitecture == Architecture.Arm64 ? "linux-arm64" : "linux-x64";
        var (publishExit, publishOutput) = await RunAsync(TestPaths.Dotnet,
            ["publish", project, "-c", "Release", "-r", rid, "-o", publish, "--artifacts-path", Path.Combine(_folder.Path, "artifacts"), "-nologo", "-v", "q"],
            project, PublishTimeout);
        output.WriteLine(publishOutput);
        Assert.True(publishExit == 0, $"the NativeAOT publish failed ({publishExit}): {publishOutput}");
        Assert.False(File.Exists(Path.Combine(publish, "AotApp.dll")), "the publish produced IL, not a NativeAOT binary");
        // The library has no trimming or AOT warning of its own ...
        Assert.DoesNotContain(publishOutput.Split('\n'), l => TrimWarning().IsMatch(l) && l.Contains("KestrelCluster.Transport"));
        // ... and the reflection-based overload warns where the app calls it.
        Assert.Contains(publishOutput.Split('\n'), l => TrimWarning().IsMatch(l) && l.Contains("Program.cs") && l.Contains("BroadcastAsync"));

        await using var run = ClusterRun.Start(output, ["-w", "2", "--urls", "http://127.0.0.1:0", "--", Path.Combine(publish, "AotApp")], appendSampleCommand: false, workingDirectory: publish);
        await run.WaitForLineAsync(AllReady(), ClusterRun.StartTimeout);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{run.Port}");

        var sender = (await (await client.PostAsync("/broadcast/hello", null)).EnsureSuccessStatusCode().Content.ReadFromJsonAsync<Received>())!.Pid;

        var other = await Wait.ForAsync(
            async () => (await client.GetFromJsonAsync<Received>("/received"))!,
            received => received.Pid != sender && received.Notes.Length > 0,
            TimeSpan.FromSeconds(20));
        Assert.Equal([$"hello from {sender}"], other.Notes);
        Assert.Equal(run.WorkerPids.Order(), new[] { sender, other.Pid }.Order());
    }

    private Task<(int ExitCode, string Output)> RunAsync(string fileName, IEnumerable<string> arguments, string workingDirectory, TimeSpan timeout)
    {
        var environment = ExternalCommand.NestedDotnetEnvironment();
        environment["KESTREL_CLUSTER_CHANNEL"] = null;
        return RunCombinedAsync(fileName, arguments, timeout, environment, workingDirectory);
    }

    private static async Task<(int ExitCode, string Output)> RunCombinedAsync(string fileName, IEnumerable<string> arguments, TimeSpan timeout, Dictionary<string, string?> environment, string workingDirectory)
    {
        var (exitCode, stdout, stderr) = await ExternalCommand.RunAsync(fileName, arguments, timeout, environment, workingDirectory);
        return (exitCode, stdout + stderr);
    }

    public void Dispose() => _folder.Dispose();

    [GeneratedRegex(@"warning IL(2026|3050)")]
    private static partial Regex TrimWarning();

    [GeneratedRegex("All 2 workers ready")]
    private static partial Regex AllReady();

    // The template's Program.cs, replaced by an app that broadcasts with its own source-generated JSON context.
    private const string AppProgram = """
        using System.Collections.Concurrent;
        using System.Text.Json.Serialization;
        using KestrelCluster;

        var builder = WebApplication.CreateSlimBuilder(args);
        builder.WebHost.UseClusterTransport();
        builder.Services.ConfigureHttpJsonOptions(options => options.SerializerOptions.TypeInfoResolverChain.Insert(0, AppJsonSerializerContext.Default));
        builder.Services.AddSingleton<Inbox>();
        builder.Services.AddHostedService<InboxListener>();

        var app = builder.Build();

        app.MapPost("/broadcast/{text}", async (string text, IClusterWorker cluster) =>
        {
            await cluster.BroadcastAsync(new Note(text, Environment.ProcessId), AppJsonSerializerContext.Default.Note);
            return new Received(Environment.ProcessId, []);
        });

        app.MapGet("/received", (Inbox inbox) => new Received(Environment.ProcessId, [.. inbox.Notes]));

        // Reflection-based JSON: the publish must warn here, at the caller.
        app.MapPost("/reflection", async (IClusterWorker cluster) =>
        {
            await cluster.BroadcastAsync(new Note("reflection", Environment.ProcessId));
            return new Received(Environment.ProcessId, []);
        });

        app.Run();

        public sealed record Note(string Text, int FromPid);

        public sealed record Received(int Pid, string[] Notes);

        [JsonSerializable(typeof(Note))]
        [JsonSerializable(typeof(Received))]
        internal partial class AppJsonSerializerContext : JsonSerializerContext;

        internal sealed class Inbox
        {
            public ConcurrentQueue<string> Notes { get; } = new();
        }

        internal sealed class InboxListener(IClusterWorker cluster, Inbox inbox) : BackgroundService
        {
            protected override async Task ExecuteAsync(CancellationToken stoppingToken)
            {
                await foreach (var message in cluster.ReadMessagesAsync(stoppingToken))
                {
                    if (message.As(AppJsonSerializerContext.Default.Note) is { } note)
                    {
                        inbox.Notes.Enqueue($"{note.Text} from {note.FromPid}");
                    }
                }
            }
        }
        """;
}
