using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using KestrelCluster.Load;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

public sealed class SystemdTests(ITestOutputHelper output)
{
    // The sample units as an operator copies them: systemd-analyze verify (Debian package systemd) accepts them, with
    // the ExecStart= binary standing in at a temporary path. `systemctl reload` must run `kestrel-cluster reload`,
    // which waits and fails when the reload fails (kill -HUP would report success either way).
    [Fact]
    public async Task SampleUnits_SystemdAnalyzeVerify_AcceptsThem()
    {
        using var folder = new TemporaryFolder();
        var standIn = Path.Combine(folder.Path, "kestrel-cluster");
        await File.WriteAllTextAsync(standIn, "#!/bin/sh\n");
        File.SetUnixFileMode(standIn, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var samples = Path.Combine(TestPaths.RepoRoot, "samples", "deploy", "systemd");
        var units = new List<string>();
        foreach (var name in new[] { "hello-cluster.socket", "hello-cluster.service" })
        {
            var text = await File.ReadAllTextAsync(Path.Combine(samples, name));
            var copy = Path.Combine(folder.Path, name);
            await File.WriteAllTextAsync(copy, text.Replace("/opt/kestrel-cluster/kestrel-cluster", standIn, StringComparison.Ordinal));
            units.Add(copy);
        }

        var (exitCode, stdout, stderr) = await ExternalCommand.RunAsync("systemd-analyze", ["verify", "--man=no", .. units], TimeSpan.FromMinutes(1));
        output.WriteLine(stdout + stderr);

        Assert.True(exitCode == 0, $"systemd-analyze verify exited {exitCode}: {stderr}");
        // It exits 0 on a directive it cannot parse ("Failed to parse ..., ignoring"): any remark about the units counts.
        Assert.Equal("", (stdout + stderr).Trim());
        var service = await File.ReadAllTextAsync(units[1]);
        Assert.Matches(new Regex($@"(?m)^ExecReload={Regex.Escape(standIn)} reload\b"), service);
        Assert.Matches(new Regex(@"(?m)^Wants=hello-cluster\.socket$"), service);
        Assert.DoesNotMatch(new Regex(@"(?m)^Requires="), service);
    }

    [Fact]
    public async Task SocketActivation_SystemdSocketActivate_SupervisorAdoptsTheSocketAndServesTheFirstConnection()
    {
        Assert.True(File.Exists("/usr/bin/systemd-socket-activate"), "needs systemd-socket-activate (Debian package systemd); .ci/run installs it");
        var port = FreePort();
        await using var cluster = ClusterRun.Start(output, ["--workers", "2", "--urls", $"http://127.0.0.1:{port}"],
            // It passes on only the variables named with -E: XDG_RUNTIME_DIR keeps the runtime folder in the test's own.
            launcher: ["systemd-socket-activate", "-l", $"127.0.0.1:{port}", "-E", "XDG_RUNTIME_DIR"]);
        await WaitForListeningAsync(port);

        // systemd-socket-activate starts the supervisor on the first connection, which waits in the
        // passed socket's backlog until a worker is ready: it must be answered, not lost.
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{port}");
        var first = await Http.GetPidAsync(client).WaitAsync(TimeSpan.FromSeconds(60));

        await cluster.WaitForLineAsync(new Regex($@"Listening on 127\.0\.0\.1:{port} \(socket passed by systemd\)"), TimeSpan.FromSeconds(10));
        Assert.Contains(first, cluster.WorkerPids);
        await cluster.WaitForLineAsync(new Regex("All 2 workers ready"), ClusterRun.StartTimeout);
        var pids = new HashSet<int>();
        for (var i = 0; i < 10; i++)
        {
            pids.Add(await Http.GetPidAsync(client));
        }

        Assert.Equal(2, pids.Count);
        Assert.All(cluster.Lines, l => Assert.DoesNotMatch(@"Listening on 127\.0\.0\.1:\d+$", l));
    }

    [Fact]
    public async Task NotifySocket_PlayingSystemd_ReadyWatchdogAndStoppingArrive()
    {
        using var folder = new TemporaryFolder();
        var notifyPath = Path.Combine(folder.Path, "notify.sock");
        using var notify = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        notify.Bind(new UnixDomainSocketEndPoint(notifyPath));
        var received = new List<(string Message, bool ClusterReady)>();
        await using var cluster = ClusterRun.Start(output, ["--workers", "2", "--urls", "http://127.0.0.1:0"],
            new Dictionary<string, string> { ["NOTIFY_SOCKET"] = notifyPath, ["WATCHDOG_USEC"] = "1000000" });

        async Task<string> NextAsync()
        {
            var buffer = new byte[4096];
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var length = await notify.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
            var message = Encoding.UTF8.GetString(buffer, 0, length);
            received.Add((message, cluster.Lines.Any(l => l.Contains("All 2 workers ready"))));
            output.WriteLine($"notify: {message.Replace('\n', ' ')}");
            return message;
        }

        while (!(await NextAsync()).StartsWith("READY=1"))
        {
        }

        // Watchdog every half of WATCHDOG_USEC: at least two more pings within 2.5 s.
        var pings = 0;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(2.5);
        while (pings < 2 && DateTime.UtcNow < deadline)
        {
            pings += (await NextAsync()) == "WATCHDOG=1" ? 1 : 0;
        }

        // systemd's variables are the supervisor's alone: a worker with them could notify systemd itself.
        foreach (var pid in cluster.WorkerPids)
        {
            var environment = ProcessInfo.EnvironmentOf(pid);
            Assert.Contains("KESTREL_CLUSTER_CHANNEL", environment.Keys);
            Assert.DoesNotContain(environment.Keys, k => k is "NOTIFY_SOCKET" or "WATCHDOG_USEC");
        }

        cluster.Signal(ProcessInfo.SIGTERM);
        while (!(await NextAsync()).StartsWith("STOPPING=1"))
        {
        }

        Assert.Equal(0, await cluster.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(2, pings);
        var ready = received.First(r => r.Message.StartsWith("READY=1"));
        Assert.True(ready.ClusterReady || cluster.Lines.Any(l => l.Contains("All 2 workers ready")));
        Assert.Contains("STATUS=2 workers ready", ready.Message);
        Assert.True(received.FindIndex(r => r.Message.StartsWith("READY=1")) < received.FindIndex(r => r.Message.StartsWith("STOPPING=1")));
    }

    [Fact]
    public async Task FdStoreAndUpgrade_PlayingSystemd_MainPidAnnouncedAndStoredSocketServesAfterTheSupervisorIsKilled()
    {
        using var folder = new TemporaryFolder();
        var notifyPath = Path.Combine(folder.Path, "notify.sock");
        using var notify = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        notify.Bind(new UnixDomainSocketEndPoint(notifyPath));
        using var notifyChannel = new KestrelCluster.Protocol.ChannelSocket(notify);
        var stored = new List<(string Name, int Fd)>();
        var received = new List<string>();

        async Task<string> NextAsync(Func<string, bool> until)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
            var buffer = new byte[4096];
            var fds = new int[16];
            while (true)
            {
                await notifyChannel.WaitReadableAsync(timeout.Token);
                if (notifyChannel.TryReceive(buffer, fds, out var length, out var fdCount) != KestrelCluster.Protocol.ReceiveStatus.Frame)
                {
                    continue;
                }

                var message = Encoding.UTF8.GetString(buffer, 0, length);
                output.WriteLine($"notify: {message.Replace('\n', ' ')} ({fdCount} fds)");
                received.Add(message);
                if (message.StartsWith("FDSTORE=1") && fdCount == 1)
                {
                    stored.Add((message.Split('\n').Single(l => l.StartsWith("FDNAME="))["FDNAME=".Length..], fds[0]));
                }

                if (until(message))
                {
                    return message;
                }
            }
        }

        await using var cluster = ClusterRun.Start(output, ["--workers", "2", "--urls", "http://127.0.0.1:0"], new Dictionary<string, string> { ["NOTIFY_SOCKET"] = notifyPath });
        await NextAsync(m => m.StartsWith("READY=1"));
        var port = cluster.Port;
        var inode = UpgradeTests.ListeningInode(port);
        var (name, fd) = Assert.Single(stored);
        Assert.Equal("kc-127.0.0.1%3A0", name);
        // The stored fd is the listening socket itself.
        Assert.Equal($"socket:[{inode}]", new FileInfo($"/proc/self/fd/{fd}").LinkTarget);

        var (exitCode, _, stderr) = await cluster.RunCliAsAsync(null, TimeSpan.FromMinutes(4), "upgrade", "-n", cluster.Name);
        Assert.True(exitCode == 0, stderr);
        var upgraded = Assert.Single(cluster.UpgradedSupervisorPids);
        await NextAsync(m => m.Contains($"MAINPID={upgraded}"));

        // The supervisor crashes under load; systemd (this test) still holds the port and starts another one with it.
        using var stopLoad = new CancellationTokenSource();
        var load = LoadRunner.RunAsync(new Uri($"http://127.0.0.1:{port}/"), keepAliveClients: 0, newConnectionClients: 8, TimeSpan.FromMinutes(5), stopLoad.Token);
        await Task.Delay(TimeSpan.FromSeconds(1));
        ProcessInfo.Signal(upgraded, ProcessInfo.SIGKILL);
        Assert.True(await ProcessInfo.WaitUntilGoneAsync([upgraded], TimeSpan.FromSeconds(10)));
        // Inherited as fd 3, as systemd passes it; LISTEN_PID names the shell that execs the supervisor.
        KestrelCluster.Interop.Libc.Fcntl(fd, KestrelCluster.Interop.Libc.F_SETFD, 0);
        await using var restarted = ClusterRun.Start(output, ["--workers", "2", "--urls", "http://127.0.0.1:0"],
            new Dictionary<string, string> { ["LISTEN_FDS"] = "1", ["LISTEN_FDNAMES"] = name },
            launcher: ["bash", "-c", $"exec 3<&{fd} {fd}<&-; export LISTEN_PID=$$; exec \"$@\"", "bash"]);
        KestrelCluster.Interop.Libc.Fcntl(fd, KestrelCluster.Interop.Libc.F_SETFD, KestrelCluster.Interop.Libc.FD_CLOEXEC);
        await restarted.WaitForLineAsync(new Regex($@"Listening on 127\.0\.0\.1:{port} \(socket passed by systemd\)"), ClusterRun.StartTimeout);
        await restarted.WaitForLineAsync(new Regex("All 2 workers ready"), ClusterRun.StartTimeout);
        using (var client = Http.NewConnectionClient($"http://127.0.0.1:{port}"))
        {
            Assert.Contains(await Http.GetPidAsync(client), restarted.WorkerPids);
        }

        stopLoad.Cancel();
        var result = await load.WaitAsync(TimeSpan.FromSeconds(60));
        output.WriteLine(result.ToString());
        foreach (var failure in result.Failures)
        {
            output.WriteLine($"{failure.Kind}: {failure.Detail}");
        }

        // Connections made while no supervisor ran waited in the backlog: none was refused.
        Assert.DoesNotContain(result.Failures, f => f.Detail.Contains("refused", StringComparison.OrdinalIgnoreCase));
        Assert.True(result.Answered > 50, result.ToString());
        Assert.Equal(inode, UpgradeTests.ListeningInode(port));
        KestrelCluster.Interop.Libc.Close(fd);
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    private static Task WaitForListeningAsync(int port)
        => Wait.UntilAsync(() => ProcessInfo.ListeningInodes(port).Count > 0, TimeSpan.FromSeconds(30));
}
