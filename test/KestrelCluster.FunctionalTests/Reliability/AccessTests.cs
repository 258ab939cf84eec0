using System.Security.Cryptography;
using System.Text.RegularExpressions;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Reliability;

// Who may talk to a cluster: only its own workers on the channel, each in its own slot, and never seeing
// another's secret in a log.
public sealed partial class AccessTests(ITestOutputHelper output)
{
    private static readonly TimeSpan LogLineTimeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task ChannelSocket_WorkerOfAnotherUid_IsRefusedWhileClusterKeepsServing()
    {
        Assert.True(Environment.UserName == "root", "this test switches to another uid with setpriv and must run as root (CI does)");
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 1);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");
        var workerPid = await Http.GetPidAsync(client);
        cluster.OpenToOtherUsers();

        // The sample app itself, started by user nobody with a worker's environment: a would-be worker of another uid.
        using var stranger = ChannelPeer.StartAsNobody(TestPaths.Dotnet, [TestPaths.SampleDll], new Dictionary<string, string>
        {
            ["KESTREL_CLUSTER_CHANNEL"] = cluster.ChannelPath,
            ["KESTREL_CLUSTER_TOKEN"] = Convert.ToHexString(RandomNumberGenerator.GetBytes(32)),
            ["KESTREL_CLUSTER_WORKER_ID"] = "0",
            ["KESTREL_CLUSTER_GENERATION"] = "1",
        });
        try
        {
            var stdout = stranger.StandardOutput.ReadToEndAsync();
            var stderr = stranger.StandardError.ReadToEndAsync();
            var refused = await cluster.WaitForLineAsync(new Regex(@"Refused a channel peer \(pid \d+, uid 65534\): uid 65534 is not the supervisor's"), LogLineTimeout);
            await stranger.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
            output.WriteLine($"as uid 65534: exit {stranger.ExitCode}\n{await stdout}{await stderr}");

            Assert.NotEqual(0, stranger.ExitCode);
            Assert.Equal(workerPid, await Http.GetPidAsync(client));
            Assert.Equal([workerPid], cluster.LiveWorkerPids());
            Assert.Single(await cluster.ListAsync());
        }
        finally
        {
            ProcessInfo.Signal(stranger.Id, ProcessInfo.SIGKILL);
        }
    }

    public static TheoryData<string> ClaimedPids => ["own pid", "the worker's pid"];

    [Theory]
    [MemberData(nameof(ClaimedPids))]
    public async Task ChannelSocket_ValidTokenFromAProcessThatIsNotThatWorker_RefusedAndTheRealWorkerStillGetsItsSlot(string claimedPid)
    {
        // The worker waits for a gate file before it starts the app, so its token is valid and still unclaimed
        // while a stranger (this test process, same uid, not the worker's descendant) presents it.
        using var folder = new TemporaryFolder();
        var gate = Path.Combine(folder.Path, "go");
        await using var cluster = ClusterRun.Start(
            output,
            ["--workers", "1", "--urls", "http://127.0.0.1:0", "--", "sh", "-c", $"while [ ! -e '{gate}' ]; do sleep 0.05; done; exec '{TestPaths.Dotnet}' '{TestPaths.SampleDll}'"],
            appendSampleCommand: false);
        var started = await cluster.WaitForLineAsync(new Regex(@"Worker 0 started \(pid (\d+)"), ClusterRun.StartTimeout);
        var workerPid = int.Parse(Regex.Match(started, @"pid (\d+)").Groups[1].Value);
        var token = ClusterRun.TokenOf(workerPid);
        Assert.False(string.IsNullOrEmpty(token), "the worker should have been given a token");

        using var peer = await ChannelPeer.ConnectAsync(cluster.ChannelPath);
        peer.Send(ChannelPeer.Hello(claimedPid == "own pid" ? Environment.ProcessId : workerPid, token));

        Assert.True(await ChannelPeer.WaitClosedAsync(peer, ChannelPeer.ClosedTimeout), "the supervisor kept the impostor's channel open");
        await cluster.WaitForLineAsync(new Regex($@"Refused a channel peer \(pid {Environment.ProcessId}, uid \d+\): process {Environment.ProcessId} is not worker 0 \(pid {workerPid}\)"), LogLineTimeout);

        // The real worker, with the same token, still gets in and serves.
        File.WriteAllText(gate, "");
        await cluster.WaitForLineAsync(new Regex("All 1 workers ready"), ClusterRun.StartTimeout);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");
        Assert.Equal(workerPid, await Http.GetPidAsync(client));
        Assert.DoesNotContain(token, cluster.Output);
    }

    [Fact]
    public async Task Tokens_ThroughStartReloadCrashAndRefusals_NeverAppearInAnyLog()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2);
        var tokens = new HashSet<string>();
        void CollectTokens()
        {
            foreach (var pid in cluster.LiveWorkerPids())
            {
                if (ClusterRun.TokenOf(pid) is { Length: > 0 } token)
                {
                    tokens.Add(token);
                }
            }
        }

        CollectTokens();
        var (exitCode, _, stderr) = await cluster.RunCliAsync(TimeSpan.FromSeconds(120), "reload");
        Assert.True(exitCode == 0, stderr);
        CollectTokens();

        var victim = cluster.ReadyWorkerPids()[0];
        var readyLines = new Regex(@"Worker \d ready \(pid \d+, generation 2\)");
        var readyBefore = cluster.Lines.Count(readyLines.IsMatch);
        ProcessInfo.Signal(victim, ProcessInfo.SIGKILL);
        await cluster.WaitForLineAsync(readyLines, ClusterRun.StartTimeout, skip: readyBefore);
        CollectTokens();

        // A peer presenting a live worker's (already claimed) token, and one with a token of the right shape.
        foreach (var presented in new[] { tokens.First(), Convert.ToHexString(RandomNumberGenerator.GetBytes(32)) })
        {
            using var peer = await ChannelPeer.ConnectAsync(cluster.ChannelPath);
            peer.Send(ChannelPeer.Hello(Environment.ProcessId, presented));
            Assert.True(await ChannelPeer.WaitClosedAsync(peer, ChannelPeer.ClosedTimeout));
        }

        await cluster.WaitForLineAsync(new Regex("Refused a channel peer"), LogLineTimeout, skip: 1);
        output.WriteLine($"{tokens.Count} worker tokens checked against {cluster.Lines.Count} output lines");
        Assert.True(tokens.Count >= 5, $"expected the tokens of 2 + 2 + 1 workers, got {tokens.Count}");
        Assert.All(tokens, token => Assert.DoesNotContain(token, cluster.Output));
        // Nor anything shaped like one.
        Assert.DoesNotMatch(HexSecretPattern(), cluster.Output);
    }

    [GeneratedRegex("[0-9A-Fa-f]{64}")]
    private static partial Regex HexSecretPattern();
}
