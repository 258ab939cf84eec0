using KestrelCluster.Load;
using System.Text.RegularExpressions;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

// `kestrel-cluster upgrade`: the supervisor itself is replaced while the port stays open.
public sealed class UpgradeTests(ITestOutputHelper output)
{
    private static readonly TimeSpan CliTimeout = TimeSpan.FromMinutes(4);

    [Fact]
    public async Task Upgrade_UnderLoad_NoRequestFailsTheListeningSocketStaysAndListTalksToTheNewSupervisor()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2);
        var port = cluster.Port;
        var oldWorkers = (await cluster.ListAsync()).Select(w => w.Pid).ToList();
        var inode = ListeningInode(port);
        Assert.Contains(ProcessInfo.FdTargets(cluster.Pid), t => t.EndsWith($"socket:[{inode}]"));

        // Keep-alive and Connection: close clients, neither of which retries.
        using var stopLoad = new CancellationTokenSource();
        var load = LoadRunner.RunAsync(new Uri($"http://127.0.0.1:{port}/"), keepAliveClients: 8, newConnectionClients: 8, TimeSpan.FromMinutes(5), stopLoad.Token);
        var (exitCode, stdout, stderr) = await cluster.RunCliAsAsync(null, CliTimeout, "upgrade", "-n", cluster.Name);
        Assert.True(exitCode == 0, stderr);
        Assert.Contains("upgraded", stdout);

        // The old supervisor drains its workers (load still running) and exits cleanly.
        Assert.Equal(0, await cluster.WaitForProcessExitAsync(TimeSpan.FromSeconds(90)));
        var newSupervisor = Assert.Single(cluster.UpgradedSupervisorPids);
        Assert.True(ProcessInfo.IsAlive(newSupervisor));
        await cluster.WaitForLineAsync(new Regex(@"Listening on .* \(socket handed over by the supervisor this one replaces\)"), TimeSpan.FromSeconds(1));
        // Served by the new supervisor's workers alone for a while before the load stops.
        using (var client = Http.NewConnectionClient($"http://127.0.0.1:{port}"))
        {
            for (var i = 0; i < 20; i++)
            {
                Assert.DoesNotContain(await Http.GetPidAsync(client), oldWorkers);
            }
        }

        stopLoad.Cancel();
        var result = await load.WaitAsync(TimeSpan.FromSeconds(60));
        output.WriteLine(result.ToString());
        Assert.Equal(0, result.Failed);
        Assert.True(result.Answered > 200, result.ToString());

        // The very same listening socket, now held by the new supervisor; the old workers are gone.
        Assert.Equal(inode, ListeningInode(port));
        Assert.Contains(ProcessInfo.FdTargets(newSupervisor), t => t.EndsWith($"socket:[{inode}]"));
        Assert.True(await ProcessInfo.WaitUntilGoneAsync(oldWorkers, TimeSpan.FromSeconds(30)));

        // `list` finds the cluster by the same name and talks to the new supervisor.
        var listed = await cluster.ListAllAsync();
        Assert.Equal(newSupervisor, listed.Supervisor.Pid);
        Assert.Equal(2, listed.Workers.Count);
        Assert.All(listed.Workers, w => Assert.Equal((2, "ready"), (w.Generation, w.State)));
        Assert.Empty(listed.Workers.Select(w => w.Pid).Intersect(oldWorkers));
        Assert.True(File.Exists(Path.Combine(cluster.RuntimeFolder, "control.sock")));
        Assert.StartsWith($"{newSupervisor} ", await File.ReadAllTextAsync(Path.Combine(cluster.RuntimeFolder, "supervisor.pid")));
    }

    // The admin port cannot be held by both supervisors: the new one binds it once the old one has handed over and
    // let it go, so probes keep finding /healthz on the same port (the systemd sample runs with --admin-urls).
    [Fact]
    public async Task Upgrade_WithAdminUrls_NewSupervisorServesTheSameAdminPort()
    {
        var adminPort = FreeTcpPort();
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 1, extraArguments: ["--admin-urls", $"http://127.0.0.1:{adminPort}"]);
        using var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{adminPort}"), Timeout = TimeSpan.FromSeconds(10) };
        Assert.Equal("ok", await admin.GetStringAsync("/healthz"));

        var (exitCode, stdout, stderr) = await cluster.RunCliAsAsync(null, CliTimeout, "upgrade", "-n", cluster.Name);
        Assert.True(exitCode == 0, stderr);
        Assert.Contains("upgraded", stdout);
        Assert.Equal(0, await cluster.WaitForProcessExitAsync(TimeSpan.FromSeconds(90)));
        var newSupervisor = Assert.Single(cluster.UpgradedSupervisorPids);

        // The old supervisor is gone: whoever answers on the admin port now is the new one.
        var ready = await Wait.ForAsync(
            async () =>
            {
                try
                {
                    return await admin.GetStringAsync("/readyz");
                }
                catch (HttpRequestException)
                {
                    return "";
                }
            },
            body => body.StartsWith("ready", StringComparison.Ordinal),
            TimeSpan.FromSeconds(30));
        Assert.StartsWith("ready", ready);
        Assert.True(ProcessInfo.IsAlive(newSupervisor));
        Assert.Contains("kestrel_cluster_worker_count", await admin.GetStringAsync("/metrics"));
    }

    private static int FreeTcpPort()
    {
        using var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        probe.Start();
        return ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
    }

    [Fact]
    public async Task Upgrade_ToMissingSupervisorOrRefusedArguments_OldKeepsServingAndCommandFailsWithTheReason()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2);
        var port = cluster.Port;
        var oldWorkers = (await cluster.ListAsync()).Select(w => w.Pid).Order().ToList();
        using var stopLoad = new CancellationTokenSource();
        var load = LoadRunner.RunAsync(new Uri($"http://127.0.0.1:{port}/"), keepAliveClients: 4, newConnectionClients: 4, TimeSpan.FromMinutes(5), stopLoad.Token);

        using var folder = new TemporaryFolder();
        var missing = Path.Combine(folder.Path, "kestrel-cluster");
        var (exitCode, _, stderr) = await cluster.RunCliAsAsync(null, CliTimeout, "upgrade", "-n", cluster.Name, "--to", missing);
        Assert.NotEqual(0, exitCode);
        Assert.Contains($"upgrade refused: no supervisor at {missing}", stderr);

        // A new supervisor that starts but refuses its arguments: the reason is its own error line.
        (exitCode, _, stderr) = await cluster.RunCliAsAsync(null, CliTimeout, "upgrade", "-n", cluster.Name,
            "--", "--workers", "2", "--urls", "http://127.0.0.1:0", "--balance", "fastest", "--", TestPaths.Dotnet, TestPaths.SampleDll);
        Assert.NotEqual(0, exitCode);
        Assert.Contains("upgrade failed: --balance must be one of round-robin, least-connections, sticky, shared; got 'fastest'", stderr);
        Assert.Contains("keeps serving", stderr);

        stopLoad.Cancel();
        var result = await load.WaitAsync(TimeSpan.FromSeconds(60));
        output.WriteLine(result.ToString());
        Assert.Equal(0, result.Failed);
        Assert.True(result.Answered > 50, result.ToString());

        Assert.False(cluster.HasExited);
        var listed = await cluster.ListAllAsync();
        Assert.Equal(cluster.Pid, listed.Supervisor.Pid);
        Assert.Equal(oldWorkers, listed.Workers.Select(w => w.Pid).Order());
        Assert.True(await ProcessInfo.WaitUntilGoneAsync(cluster.UpgradedSupervisorPids, TimeSpan.FromSeconds(30)));
        Assert.False(File.Exists(Path.Combine(cluster.RuntimeFolder, "upgrade.sock")));
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{port}");
        Assert.Contains(await Http.GetPidAsync(client), oldWorkers);
    }

    // The inode of the socket listening on 127.0.0.1:port (state 0A in /proc/net/tcp).
    internal static string ListeningInode(int port)
        => ProcessInfo.ListeningInodes(port) is [var inode, ..] ? inode : throw new InvalidOperationException($"nothing listens on 127.0.0.1:{port}");
}
