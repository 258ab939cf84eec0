using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

public sealed class SystemdTests(ITestOutputHelper output)
{
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
            var environment = (await File.ReadAllTextAsync($"/proc/{pid}/environ")).Split('\0');
            Assert.Contains(environment, v => v.StartsWith("KESTREL_CLUSTER_CHANNEL="));
            Assert.DoesNotContain(environment, v => v.StartsWith("NOTIFY_SOCKET=") || v.StartsWith("WATCHDOG_USEC="));
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

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    private static async Task WaitForListeningAsync(int port)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!File.ReadAllText("/proc/net/tcp").Contains($"0100007F:{port:X4} 00000000:0000 0A"))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"nothing listens on 127.0.0.1:{port}");
            }

            await Task.Delay(50);
        }
    }
}
