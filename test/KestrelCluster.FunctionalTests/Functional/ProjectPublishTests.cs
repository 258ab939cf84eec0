using System.Net;
using System.Text.RegularExpressions;
using KestrelCluster.Load;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

// `run --project`: each generation is published into a folder of its own and its workers run there.
public sealed class ProjectPublishTests(ITestOutputHelper output)
{
    // A publish takes 10-40 s on a busy two-core machine; the first one also compiles the app from scratch.
    private static readonly TimeSpan PublishAndStart = TimeSpan.FromSeconds(240);
    private static readonly TimeSpan CliTimeout = TimeSpan.FromSeconds(300);

    [Fact]
    public async Task Project_GeneratedStaticAssetInProduction_AnswersFromEveryWorker()
    {
        using var project = new TestWebProject("v1");
        await using var cluster = await StartAsync(project);

        // The scoped-CSS bundle exists only in the build's output, never in the project's wwwroot.
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");
        var pids = new HashSet<string>();
        for (var i = 0; i < 20 && pids.Count < 2; i++)
        {
            using var response = await client.GetAsync($"/{TestWebProject.AppName}.styles.css");
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {body}");
            Assert.Contains("color: teal", body);
            pids.Add(response.Headers.GetValues("X-Pid").Single());
        }

        Assert.Equal(2, pids.Count);
        Assert.DoesNotContain(cluster.Lines, l => l.Contains("FileNotFoundException"));
    }

    [Fact]
    public async Task ProjectReload_CompileError_IsRefusedWhileOldWorkersServeAndTheFixedSourceIsServedFromANewFolder()
    {
        using var project = new TestWebProject("v1");
        await using var cluster = await StartAsync(project);
        var oldPids = (await cluster.ListAsync()).Select(w => w.Pid).Order().ToList();
        var oldFolders = oldPids.Select(WorkingFolderOf).Distinct().ToList();
        var oldFolder = Assert.Single(oldFolders);
        // Workers run a published copy, owned by the cluster, not the build output in the project folder.
        Assert.StartsWith(cluster.RuntimeFolder + "/", oldFolder);
        Assert.True(File.Exists(Path.Combine(oldFolder, $"{TestWebProject.AppName}.dll")));

        // A compile error in the source: the reload is refused with the compiler's error, and the old workers
        // serve throughout, under load.
        project.SetVersion("v2", broken: true);
        using var stopLoad = new CancellationTokenSource();
        var load = LoadRunner.RunAsync(new Uri($"http://127.0.0.1:{cluster.Port}/"), keepAliveClients: 4, newConnectionClients: 4, TimeSpan.FromMinutes(5), stopLoad.Token);
        var (exitCode, _, stderr) = await cluster.RunCliAsync(CliTimeout, "reload");
        stopLoad.Cancel();
        var result = await load.WaitAsync(TimeSpan.FromSeconds(60));
        output.WriteLine(result.ToString());

        Assert.NotEqual(0, exitCode);
        Assert.Contains("error CS1002", stderr);
        Assert.Contains("Program.cs", stderr);
        Assert.Equal(0, result.Failed);
        Assert.True(result.Answered > 100, result.ToString());
        var workers = await cluster.ListAsync();
        Assert.Equal(oldPids, workers.Select(w => w.Pid).Order());
        Assert.All(workers, w => Assert.Equal((1, "ready"), (w.Generation, w.State)));
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");
        Assert.Equal("v1", await client.GetStringAsync("/version"));

        // Fixed: the reload publishes the new source and every worker serves it.
        project.SetVersion("v2");
        (exitCode, _, stderr) = await cluster.RunCliAsync(CliTimeout, "reload");
        Assert.True(exitCode == 0, stderr);
        var answers = new List<(string Body, string Pid)>();
        for (var i = 0; i < 10; i++)
        {
            using var response = await client.GetAsync("/version");
            answers.Add((await response.Content.ReadAsStringAsync(), response.Headers.GetValues("X-Pid").Single()));
        }

        Assert.All(answers, a => Assert.Equal("v2", a.Body));
        Assert.Equal(2, answers.Select(a => a.Pid).Distinct().Count());

        // The new generation runs from a folder of its own; the old one is removed once its workers have exited.
        var newFolder = Assert.Single(answers.Select(a => WorkingFolderOf(int.Parse(a.Pid))).Distinct());
        Assert.NotEqual(oldFolder, newFolder);
        await ProcessInfo.WaitUntilGoneAsync(oldPids, TimeSpan.FromSeconds(60));
        await Wait.UntilAsync(() => !Directory.Exists(oldFolder), TimeSpan.FromSeconds(30));
        Assert.Equal([newFolder], Directory.GetDirectories(Path.GetDirectoryName(newFolder)!));
    }

    private async Task<ClusterRun> StartAsync(TestWebProject project)
    {
        var cluster = ClusterRun.Start(output, ["--project", project.Folder, "--workers", "2", "--urls", "http://127.0.0.1:0"],
            new Dictionary<string, string> { ["ASPNETCORE_ENVIRONMENT"] = "Production" }, appendSampleCommand: false, workingDirectory: project.Folder);
        try
        {
            await cluster.WaitForLineAsync(new Regex("All 2 workers ready"), PublishAndStart);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    private static string WorkingFolderOf(int pid) => new DirectoryInfo($"/proc/{pid}/cwd").LinkTarget ?? throw new InvalidOperationException($"no cwd for pid {pid}");
}
