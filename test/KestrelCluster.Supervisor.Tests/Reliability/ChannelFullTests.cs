using System.Diagnostics;
using System.Net.Sockets;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;
using KestrelCluster.Supervisor.Accept;
using KestrelCluster.Supervisor.Distribution;
using KestrelCluster.Supervisor.Workers;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Reliability;

// A worker that stops reading its channel fills the socket's queue; the supervisor's next send gets EAGAIN
// and the connection goes to another worker. The window (32) normally stops this first, so here the window is
// opened wide to reach the kernel's limit with real sessions on real sockets.
public sealed class ChannelFullTests(ITestOutputHelper output)
{
    [Fact]
    public void WorkerStopsReadingItsChannel_DispatchNeverBlocksAndTheOtherWorkerGetsTheRest()
    {
        const int Connections = 2_000;
        using var files = new TestFiles();
        using var stuckPair = new SocketPair();
        using var readingPair = new SocketPair();
        var dispatcher = new Dispatcher(TimeSpan.FromSeconds(30), window: 100_000);
        var handler = new NullHandler();
        using var stuck = NewSession(0, stuckPair, dispatcher, handler);
        using var reading = NewSession(1, readingPair, dispatcher, handler);
        foreach (var session in new[] { stuck, reading })
        {
            dispatcher.SetBound(session, 0, bound: true);
            dispatcher.AddReady(session);
        }

        var readingPeer = new ChannelSocket(readingPair.Right);
        var slowest = TimeSpan.Zero;
        foreach (var fd in files.Open(Connections))
        {
            var started = Stopwatch.GetTimestamp();
            dispatcher.Dispatch([fd.Fd], listenerId: 0);
            var took = Stopwatch.GetElapsedTime(started);
            slowest = took > slowest ? took : slowest;
            // The reading worker reads whatever has arrived (and would acknowledge later).
            ReadAndClose(readingPeer);
        }

        var stuckHolds = dispatcher.UnackedOf(stuck);
        var readingHolds = dispatcher.UnackedOf(reading);
        output.WriteLine($"{Connections} dispatched: {stuckHolds} fill the stuck worker's channel, {readingHolds} went to the reading worker, {dispatcher.WaitingCount} waiting; slowest Dispatch {slowest.TotalMilliseconds:0.00} ms");

        // The stuck channel took what its queue holds and no more; the rest went on without waiting for it.
        Assert.Equal(0, dispatcher.WaitingCount);
        Assert.Equal(Connections, stuckHolds + readingHolds);
        Assert.InRange(stuckHolds, 10, Connections / 4);
        Assert.True(readingHolds > 2 * stuckHolds, "most connections should have gone to the worker that reads");

        dispatcher.Close();
    }

    private static WorkerSession NewSession(int id, SocketPair pair, Dispatcher dispatcher, IWorkerSessionHandler handler)
        => new(new WorkerInstance(new WorkerLaunch(id, 1, "unused"), 0), new ChannelSocket(pair.Left), new PeerCredentials(Environment.ProcessId, 0, 0), dispatcher, handler);

    private static void ReadAndClose(ChannelSocket channel)
    {
        var buffer = new byte[FrameLimits.MaxFrameSize];
        var fds = new int[FrameLimits.MaxFdsPerFrame];
        while (channel.TryReceive(buffer, fds, out _, out var count) == ReceiveStatus.Frame)
        {
            ChannelSocket.CloseAll(fds.AsSpan(0, count));
        }
    }

    private sealed class NullHandler : IWorkerSessionHandler
    {
        public BindOutcome Bind(WorkerSession session, string requested) => new(null, SocketError.AccessDenied, "none");

        public void Ready(WorkerSession session)
        {
        }

        public void Closed(WorkerSession session, string reason, bool violation)
        {
        }

        public void Message(WorkerSession session, int target, byte[] json)
        {
        }

        public void RelayHub(WorkerSession session, int target, ReadOnlySpan<byte> payload)
        {
        }
    }
}
