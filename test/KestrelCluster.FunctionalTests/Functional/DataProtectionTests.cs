using System.Net;
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

// Data protection (antiforgery, auth cookies) across workers: a form rendered by one worker and posted to another
// must validate, also with no writable home (a container, systemd DynamicUser=), where ASP.NET Core's default
// keeps each process's keys in memory, and across a reload to a new release.
public sealed class DataProtectionTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ReloadTimeout = TimeSpan.FromMinutes(3);

    private sealed record FormTokens(int Pid, string HeaderName, string RequestToken);

    [Fact]
    public async Task Antiforgery_TokenFromOneWorkerPostedToAnother_IsAcceptedWithNoWritableHome()
    {
        using var home = new TemporaryFolder();
        await using var cluster = await StartAsync(NoWritableHome(home), workingDirectory: null);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");

        var form = await client.GetFromJsonAsync<FormTokens>("/form");
        var answers = await PostUntilAnotherWorkerAnswersAsync(client, form!);

        Assert.All(answers, a => Assert.True(a.Status == HttpStatusCode.OK, $"worker {a.Pid} refused the token worker {form!.Pid} made: {a.Body}"));
        // Both workers started at once and still made one key ring between them.
        var keys = Path.Combine(cluster.RuntimeFolder, "keys");
        Assert.Single(Directory.GetFiles(keys, "key-*.xml"));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(keys));
        Assert.Equal(2, cluster.Lines.Count(l => l.Contains($"Data protection keys are shared by the cluster's workers in {keys}")));

        // The keys are the run's: gone with the supervisor's runtime folder after a clean stop.
        cluster.Signal(ProcessInfo.SIGTERM);
        Assert.Equal(0, await cluster.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.False(Directory.Exists(cluster.RuntimeFolder), $"{cluster.RuntimeFolder} was left behind");
    }

    [Fact]
    public async Task Antiforgery_TokenMadeBeforeReloadToTheNextRelease_IsAcceptedByTheNewGeneration()
    {
        using var home = new TemporaryFolder();
        using var deploy = SymlinkDeploy.CreateOf(TestPaths.DataProtectionAppDll, "v1", "v2");
        await using var cluster = await StartAsync(NoWritableHome(home), workingDirectory: deploy.Root, "--cwd", "current");
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");
        var form = await client.GetFromJsonAsync<FormTokens>("/form");
        var before = cluster.WorkerPids;

        // The new generation runs from another folder (its content root): the default application name differs.
        deploy.Switch("v2");
        var (exitCode, _, stderr) = await cluster.RunCliAsync(ReloadTimeout, "reload");
        Assert.True(exitCode == 0, $"reload failed: {stderr}");
        var answers = await PostUntilAnotherWorkerAnswersAsync(client, form!);

        Assert.All(answers, a => Assert.DoesNotContain(a.Pid, before));
        Assert.All(answers, a => Assert.True(a.Status == HttpStatusCode.OK, $"worker {a.Pid} of the new generation refused a token made before the reload: {a.Body}"));
    }

    [Fact]
    public async Task AppPersistsItsOwnKeys_AppsRepositoryWins()
    {
        using var home = new TemporaryFolder();
        var appKeys = Path.Combine(home.Path, "app-keys");
        var environment = NoWritableHome(home);
        environment["APP_KEYS_PATH"] = appKeys;
        await using var cluster = await StartAsync(environment, workingDirectory: null);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");

        var form = await client.GetFromJsonAsync<FormTokens>("/form");
        var answers = await PostUntilAnotherWorkerAnswersAsync(client, form!);

        Assert.All(answers, a => Assert.Equal(HttpStatusCode.OK, a.Status));
        Assert.NotEmpty(Directory.GetFiles(appKeys, "key-*.xml"));
        Assert.Empty(Directory.Exists(Path.Combine(cluster.RuntimeFolder, "keys")) ? Directory.GetFiles(Path.Combine(cluster.RuntimeFolder, "keys")) : []);
        Assert.DoesNotContain(cluster.Lines, l => l.Contains("Data protection keys are shared"));
    }

    // HOME names a file: no one, not even root, can make $HOME/.aspnet/DataProtection-Keys.
    private static Dictionary<string, string> NoWritableHome(TemporaryFolder folder)
    {
        var home = Path.Combine(folder.Path, "home-is-a-file");
        File.WriteAllText(home, "");
        return new() { ["HOME"] = home };
    }

    private async Task<ClusterRun> StartAsync(IDictionary<string, string> environment, string? workingDirectory, params string[] extraArguments)
    {
        var app = workingDirectory is null ? TestPaths.DataProtectionAppDll : "DataProtectionApp.dll";
        var run = ClusterRun.Start(output, ["--workers", "2", "--urls", "http://127.0.0.1:0", .. extraArguments, "--", TestPaths.Dotnet, app],
            environment, appendSampleCommand: false, workingDirectory: workingDirectory ?? Path.GetDirectoryName(TestPaths.DataProtectionAppDll));
        return await run.ReadyAsync(workers: 2);
    }

    // Posts the form over new connections (round-robin moves each to the next worker) until a worker other than the
    // one that made the token has answered; every answer, with the pid that gave it.
    private static async Task<List<(int Pid, HttpStatusCode Status, string Body)>> PostUntilAnotherWorkerAnswersAsync(HttpClient client, FormTokens form)
    {
        var answers = new List<(int Pid, HttpStatusCode Status, string Body)>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/form");
            request.Headers.Add(form.HeaderName, form.RequestToken);
            using var response = await client.SendAsync(request);
            var body = await response.Content.ReadAsStringAsync();
            var pid = int.Parse(Regex.Match(body, @"by (\d+)").Groups[1].Value);
            answers.Add((pid, response.StatusCode, body));
            if (pid != form.Pid)
            {
                return answers;
            }
        }

        throw new TimeoutException($"no worker other than {form.Pid} answered: {string.Join("; ", answers)}");
    }
}
