using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

// A symlink deploy: `current` → releases/v1 is switched to v2, then `kestrel-cluster reload`. The new
// generation must run the release `current` names now, with that release's configuration.
public sealed class SymlinkDeployTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ReloadTimeout = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task Reload_RunFromTheCurrentSymlinkSwitchedToTheNextRelease_EveryWorkerRunsTheNewReleasesConfiguration()
    {
        using var deploy = SymlinkDeploy.Create();
        // As a shell that did `cd /srv/app/current` starts it: the physical cwd is releases/v1, PWD the link.
        await using var cluster = await StartAsync(deploy, workingDirectory: deploy.Current, new Dictionary<string, string> { ["PWD"] = deploy.Current });
        Assert.Equal(["v1"], await ReleasesServedAsync(cluster));

        deploy.Switch("v2");
        await ReloadAsync(cluster);
        Assert.Equal(["v2"], await ReleasesServedAsync(cluster));

        // Old releases go away; the supervisor's own working folder (v1) with them.
        deploy.Delete("v1");
        deploy.Switch("v3");
        await ReloadAsync(cluster);
        Assert.Equal(["v3"], await ReleasesServedAsync(cluster));
    }

    [Fact]
    public async Task Reload_CwdOptionNamesTheSymlink_EveryWorkerRunsTheNewReleasesConfiguration()
    {
        using var deploy = SymlinkDeploy.Create();
        await using var cluster = await StartAsync(deploy, workingDirectory: deploy.Root, environment: null, "--cwd", "current");
        Assert.Equal(["v1"], await ReleasesServedAsync(cluster));

        deploy.Switch("v2");
        await ReloadAsync(cluster);
        Assert.Equal(["v2"], await ReleasesServedAsync(cluster));
    }

    [Fact]
    public async Task Run_CwdDoesNotExist_OneErrorLineNamingItAndNonZeroExit()
    {
        using var folder = new TemporaryFolder();
        var missing = Path.Combine(folder.Path, "nope");
        await using var run = ClusterRun.Start(output, ["--cwd", missing], appendSampleCommand: true);

        Assert.Equal(2, await run.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        var error = Assert.Single(run.ErrorLines);
        Assert.Equal($"kestrel-cluster: error: --cwd: folder not found: {missing}", error);
    }

    private async Task<ClusterRun> StartAsync(SymlinkDeploy deploy, string workingDirectory, IDictionary<string, string>? environment, params string[] extraArguments)
    {
        var run = ClusterRun.Start(output, ["--workers", "2", "--urls", "http://127.0.0.1:0", .. extraArguments, "--", TestPaths.Dotnet, SymlinkDeploy.AppDll],
            environment, appendSampleCommand: false, workingDirectory: workingDirectory);
        return await run.ReadyAsync(workers: 2);
    }

    private static async Task ReloadAsync(ClusterRun cluster)
    {
        var (exitCode, _, stderr) = await cluster.RunCliAsync(ReloadTimeout, "reload");
        Assert.True(exitCode == 0, $"reload failed: {stderr}");
    }

    // The "release" each ready worker reports, asked on new connections until every one has answered. reload answers
    // once the new workers are ready; an old one may still be listed, draining, and gets no new connection.
    private static async Task<IReadOnlyList<string?>> ReleasesServedAsync(ClusterRun cluster)
    {
        var workers = (await cluster.ListAsync()).Where(w => w.State == "ready").Select(w => w.Pid).ToHashSet();
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");
        var releases = new Dictionary<int, string?>();
        await Wait.UntilAsync(async () =>
        {
            var answer = await client.GetFromJsonAsync<JsonElement>("/cluster");
            releases[answer.GetProperty("pid").GetInt32()] = answer.GetProperty("release").GetString();
            return workers.IsSubsetOf(releases.Keys);
        }, TimeSpan.FromSeconds(30));
        return [.. workers.Select(pid => releases[pid]).Distinct()];
    }
}
