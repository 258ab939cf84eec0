using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using KestrelCluster.Protocol;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

// What a user sees when they get something wrong: one "kestrel-cluster: error:" line on stderr naming the
// problem, a non-zero exit, and nothing left running. And what a stranger on the channel socket gets: dropped,
// logged, while the cluster keeps serving.
public sealed partial class BadInputTests(ITestOutputHelper output)
{
    // A usage error needs no worker: only the supervisor's own start-up stands between the command and its exit.
    private static readonly TimeSpan UsageErrorExitTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan PeerClosedTimeout = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan LogLineTimeout = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Run_UnknownOption_OneErrorLineNamingItAndNonZeroExit()
    {
        await AssertUsageErrorAsync(["--bogus"], appendSampleCommand: true, "--bogus");
    }

    [Fact]
    public async Task Run_ZeroWorkers_OneErrorLineNamingWorkersAndNonZeroExit()
    {
        await AssertUsageErrorAsync(["--workers", "0"], appendSampleCommand: true, "--workers", "'0'");
    }

    [Fact]
    public async Task Run_NonNumericWorkers_OneErrorLineNamingTheValueAndNonZeroExit()
    {
        await AssertUsageErrorAsync(["--workers", "abc"], appendSampleCommand: true, "--workers", "'abc'");
    }

    [Fact]
    public async Task Run_MissingAppDll_OneErrorLineNamingThePathAndNonZeroExit()
    {
        await AssertUsageErrorAsync(["--", "dotnet", "/tmp/nope/Missing.dll"], appendSampleCommand: false, "not found", "/tmp/nope/Missing.dll");
    }

    [Fact]
    public async Task Run_MissingProject_OneErrorLineNamingThePathAndNonZeroExit()
    {
        await AssertUsageErrorAsync(["--project", "/tmp/does-not-exist"], appendSampleCommand: false, "not found", "/tmp/does-not-exist");
    }

    [Fact]
    public async Task Run_PortAlreadyInUse_OneErrorLineNonZeroExitAndWorkersKilled()
    {
        using var blocker = new TcpListener(IPAddress.Loopback, 0);
        blocker.Start();
        var port = ((IPEndPoint)blocker.LocalEndpoint).Port;

        await using var run = ClusterRun.Start(output, ["--workers", "2", "--urls", $"http://127.0.0.1:{port}"]);
        var exitCode = await run.WaitForExitAsync(ClusterRun.StartTimeout);

        Assert.NotEqual(0, exitCode);
        var error = AssertSingleError(run);
        Assert.Contains("address already in use", error);
        Assert.Contains($"127.0.0.1:{port}", error);

        // The workers did start (the bind is theirs to ask for), and went with the supervisor.
        Assert.Equal(2, run.WorkerPids.Count);
        Assert.True(await ProcessInfo.WaitUntilGoneAsync(run.WorkerPids, TimeSpan.FromSeconds(5)), $"workers still running: {string.Join(", ", run.WorkerPids.Where(ProcessInfo.IsAlive))}");
        AssertNothingLeft(run);

        // The port is still the other owner's: nobody took it over or closed it.
        using var probe = new TcpClient();
        await probe.ConnectAsync(IPAddress.Loopback, port).WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task ChannelPeer_WrongToken_RefusedAndLoggedWhileClusterKeepsServing()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 1);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");
        var workerPid = await Http.GetPidAsync(client);

        using var peer = await ConnectToChannelAsync(cluster);
        // Shaped like a real token (64 hex characters), so the no-hex check below also catches it being echoed.
        var wrongToken = Convert.ToHexString(RandomNumberGenerator.GetBytes(32));
        peer.Send(Hello(Environment.ProcessId, wrongToken));

        await AssertClosedByPeerAsync(peer);
        var refused = await cluster.WaitForLineAsync(RefusedPattern(), LogLineTimeout);
        Assert.Contains($"pid {Environment.ProcessId},", refused);
        Assert.Contains("token", refused);

        await AssertStillServingAsync(cluster, client, workerPid);
        Assert.DoesNotMatch(HexSecretPattern(), cluster.Output);
    }

    public static TheoryData<string> GarbageKinds => ["random bytes", "empty frame", "70 KB frame", "truncated hello", "hello with invalid UTF-8", "hello carrying an fd", "acks before hello"];

    [Theory]
    [MemberData(nameof(GarbageKinds))]
    public async Task ChannelPeer_GarbageFrame_DroppedWhileClusterKeepsServing(string kind)
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 1);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");
        var workerPid = await Http.GetPidAsync(client);

        using var peer = await ConnectToChannelAsync(cluster);
        SendGarbage(peer, kind);

        await AssertClosedByPeerAsync(peer);
        var refused = await cluster.WaitForLineAsync(RefusedPattern(), LogLineTimeout);
        Assert.Contains($"pid {Environment.ProcessId},", refused);

        await AssertStillServingAsync(cluster, client, workerPid);
        Assert.DoesNotMatch(HexSecretPattern(), cluster.Output);
    }

    private async Task AssertUsageErrorAsync(string[] arguments, bool appendSampleCommand, params string[] expectedInError)
    {
        await using var run = ClusterRun.Start(output, arguments, appendSampleCommand: appendSampleCommand);
        var exitCode = await run.WaitForExitAsync(UsageErrorExitTimeout);

        Assert.NotEqual(0, exitCode);
        var error = AssertSingleError(run);
        Assert.All(expectedInError, expected => Assert.Contains(expected, error));
        Assert.Empty(run.WorkerPids);
        AssertNothingLeft(run);
    }

    private static string AssertSingleError(ClusterRun run)
    {
        var error = Assert.Single(run.ErrorLines);
        Assert.StartsWith("kestrel-cluster: error: ", error);
        return error;
    }

    private static void AssertNothingLeft(ClusterRun run)
    {
        Assert.All(run.WorkerPids, pid => Assert.False(ProcessInfo.IsAlive(pid), $"worker pid {pid} is still running"));
        // Whatever the run started inherited its private XDG_RUNTIME_DIR, reported pid or not.
        Assert.Empty(ProcessInfo.PidsWithEnvironmentContaining(run.RuntimeRoot));
        Assert.False(Directory.Exists(run.RuntimeFolder), $"{run.RuntimeFolder} was left behind: {string.Join(", ", Directory.Exists(run.RuntimeFolder) ? Directory.GetFileSystemEntries(run.RuntimeFolder) : [])}");
    }

    private static async Task<Socket> ConnectToChannelAsync(ClusterRun cluster)
    {
        var peer = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
        try
        {
            await peer.ConnectAsync(new UnixDomainSocketEndPoint(cluster.ChannelPath)).WaitAsync(TimeSpan.FromSeconds(10));
            return peer;
        }
        catch
        {
            peer.Dispose();
            throw;
        }
    }

    private static byte[] Hello(int pid, string token) => ChannelPeer.Hello(pid, token);

    private static void SendGarbage(Socket peer, string kind)
    {
        switch (kind)
        {
            case "random bytes":
                var random = new byte[512];
                new Random(20240611).NextBytes(random);
                peer.Send(random);
                break;
            case "empty frame":
                peer.Send(Array.Empty<byte>());
                break;
            case "70 KB frame":
                peer.Send(Hello(0, new string('a', (70 * 1024) - HelloFrame.HeaderSize)));
                break;
            case "truncated hello":
                peer.Send([(byte)FrameType.Hello, 0x01, 0x02]);
                break;
            case "hello with invalid UTF-8":
                // The token is the rest of the frame: raw bytes after an empty one.
                peer.Send([.. Hello(Environment.ProcessId, ""), 0xC3, 0x28, 0xFF, 0xFE]);
                break;
            case "hello carrying an fd":
                using (var passed = File.OpenHandle("/dev/null"))
                {
                    var errno = new ChannelSocket(peer).TrySend(Hello(Environment.ProcessId, "x"), [(int)passed.DangerousGetHandle()]);
                    Assert.Equal(0, errno);
                }

                break;
            case "acks before hello":
                peer.Send(AcksFrame.Write(new byte[AcksFrame.SizeFor(1)], [1], accepted: true));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, null);
        }
    }

    // The supervisor closes a refused peer: a receive sees the end of the stream (or a reset, when it left our frame unread).
    private static async Task AssertClosedByPeerAsync(Socket peer)
    {
        using var timeout = new CancellationTokenSource(PeerClosedTimeout);
        try
        {
            var received = await peer.ReceiveAsync(new byte[FrameLimits.MaxFrameSize], SocketFlags.None, timeout.Token);
            Assert.Equal(0, received);
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
        {
        }
    }

    private static async Task AssertStillServingAsync(ClusterRun cluster, HttpClient client, int workerPid)
    {
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(workerPid, await Http.GetPidAsync(client));
        }

        Assert.False(cluster.HasExited);
        Assert.True(ProcessInfo.IsAlive(workerPid));
        // The real worker kept its place: it was neither restarted nor joined by a stranger.
        Assert.Single(cluster.WorkerPids);
    }

    [GeneratedRegex("Refused a channel peer")]
    private static partial Regex RefusedPattern();

    [GeneratedRegex("[0-9A-Fa-f]{64}")]
    private static partial Regex HexSecretPattern();
}
