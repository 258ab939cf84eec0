using System.Text.Json;
using System.Text.RegularExpressions;
using KestrelCluster.Protocol;
using KestrelCluster.Supervisor.Control;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Reliability;

// The fuzzer's frames over real sockets against a live supervisor: thousands of peers, each sending one
// malformed hello or control request (some carrying fds), each dropped and logged, while the cluster serves on
// and keeps no fd of theirs. The in-process run with 100,000 cases per decoder is ProtocolFuzzTests.
public sealed partial class HostilePeerTests(ITestOutputHelper output)
{
    private const int ChannelPeers = 2_000;
    private const int ControlPeers = 1_000;

    [Fact]
    public async Task ThreeThousandMalformedPeers_EachDroppedAndLogged_ClusterServesAndHoldsNoExtraFds()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 1);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");
        var workerPid = await Http.GetPidAsync(client);
        using var passed = File.OpenHandle("/dev/null");

        // A first round loads the code (and assemblies, which the runtime keeps open) that refusals use.
        var warmUp = Cases(cluster, new FrameFuzzer(seed: 29), 100, 100);
        Assert.Equal(0, await SendAllAsync(warmUp, passed));
        await Wait.UntilAsync(() => RefusedCount(cluster) >= warmUp.Count, TimeSpan.FromSeconds(30));
        var idleFds = ProcessInfo.FdCount(cluster.Pid);
        var idleTargets = ProcessInfo.FdTargets(cluster.Pid);
        var refusedBefore = RefusedCount(cluster);

        var cases = Cases(cluster, new FrameFuzzer(seed: 23), ChannelPeers, ControlPeers);
        var notClosed = await SendAllAsync(cases, passed);

        await Wait.UntilAsync(() => RefusedCount(cluster) - refusedBefore >= cases.Count, TimeSpan.FromSeconds(30));
        output.WriteLine($"{cases.Count} hostile peers ({ChannelPeers} channel, {ControlPeers} control), {RefusedCount(cluster) - refusedBefore} refusals logged; supervisor fds {idleFds} idle, {ProcessInfo.FdCount(cluster.Pid)} after");
        Assert.Equal(0, notClosed);
        Assert.False(cluster.HasExited);
        Assert.Equal(workerPid, await Http.GetPidAsync(client));
        Assert.Equal([workerPid], cluster.LiveWorkerPids());
        // Every fd a peer passed, and every peer socket, was closed again.
        try
        {
            await Wait.UntilAsync(() => ProcessInfo.FdCount(cluster.Pid) <= idleFds, TimeSpan.FromSeconds(30));
        }
        catch (TimeoutException)
        {
            Assert.Fail($"the supervisor kept fds it did not hold before:\n{string.Join("\n", ProcessInfo.FdTargets(cluster.Pid).Except(idleTargets))}");
        }

        Assert.DoesNotContain(cluster.Lines, l => l.Contains("Unhandled exception", StringComparison.OrdinalIgnoreCase));
    }

    // Cases are drawn up front (the fuzzer is not thread-safe); control requests that would parse are left out,
    // since a well-formed `stop` would rightly stop the cluster.
    private static List<(string Path, byte[] Frame, bool WithFd)> Cases(ClusterRun cluster, FrameFuzzer fuzzer, int channelPeers, int controlPeers)
    {
        var cases = new List<(string Path, byte[] Frame, bool WithFd)>();
        while (cases.Count < channelPeers)
        {
            cases.Add((cluster.ChannelPath, fuzzer.NextHello(), fuzzer.Random.Next(4) == 0));
        }

        while (cases.Count < channelPeers + controlPeers)
        {
            var frame = fuzzer.NextControlRequest();
            if (!Parses(frame))
            {
                cases.Add((Path.Combine(cluster.RuntimeFolder, "control.sock"), frame, fuzzer.Random.Next(4) == 0));
            }
        }

        return cases;
    }

    // One peer per case, 16 at a time; returns how many the supervisor did not close.
    private static async Task<int> SendAllAsync(List<(string Path, byte[] Frame, bool WithFd)> cases, Microsoft.Win32.SafeHandles.SafeFileHandle passed)
    {
        var notClosed = 0;
        await Parallel.ForEachAsync(cases, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (c, cancellationToken) =>
        {
            using var peer = await ChannelPeer.ConnectAsync(c.Path);
            _ = new ChannelSocket(peer).TrySend(c.Frame, c.WithFd ? [(int)passed.DangerousGetHandle()] : []);
            if (!await ChannelPeer.WaitClosedAsync(peer, ChannelPeer.ClosedTimeout))
            {
                Interlocked.Increment(ref notClosed);
            }
        });
        return notClosed;
    }

    private static bool Parses(byte[] frame)
    {
        try
        {
            ControlServer.ParseRequest(frame);
            return true;
        }
        catch (Exception ex) when (ex is InvalidFrameException or JsonException)
        {
            return false;
        }
    }

    private static int RefusedCount(ClusterRun cluster) => cluster.Lines.Count(l => RefusedPattern().IsMatch(l));


    [GeneratedRegex(@"Refused a channel peer \(pid \d+, uid \d+\)")]
    private static partial Regex RefusedPattern();
}
