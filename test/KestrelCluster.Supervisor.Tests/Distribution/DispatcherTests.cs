using KestrelCluster.Interop;
using KestrelCluster.Supervisor.Distribution;
using KestrelCluster.Tests.Infrastructure;

namespace KestrelCluster.Tests.Distribution;

public sealed class DispatcherTests : IDisposable
{
    private static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan BlockedDispatchTimeout = TimeSpan.FromSeconds(10);

    private readonly TestFiles _files = new();
    private long _now = 1_000;

    public void Dispose() => _files.Dispose();

    private long Now
    {
        get => Interlocked.Read(ref _now);
        set => Interlocked.Exchange(ref _now, value);
    }

    private Dispatcher NewDispatcher(int window = Dispatcher.DefaultWindow, int maxWaiting = Dispatcher.DefaultMaxWaiting)
        => new(MaxWait, window, maxWaiting, clock: () => Now);

    private static FakeTarget Ready(Dispatcher dispatcher, int id, params int[] listeners)
    {
        var target = new FakeTarget(id);
        foreach (var listener in listeners.Length == 0 ? [0] : listeners)
        {
            dispatcher.SetBound(target, listener, bound: true);
        }

        dispatcher.AddReady(target);
        return target;
    }

    private TestFd Dispatch(Dispatcher dispatcher, int listenerId = 0)
    {
        var fd = _files.Open();
        dispatcher.Dispatch([fd.Fd], listenerId);
        return fd;
    }

    [Fact]
    public void Dispatch_TwoReadyWorkers_AlternatesBetweenThem()
    {
        var dispatcher = NewDispatcher();
        var a = Ready(dispatcher, 0);
        var b = Ready(dispatcher, 1);

        var fds = Enumerable.Range(0, 6).Select(_ => Dispatch(dispatcher)).ToList();

        Assert.Equal([fds[0].Fd, fds[2].Fd, fds[4].Fd], a.SentFds);
        Assert.Equal([fds[1].Fd, fds[3].Fd, fds[5].Fd], b.SentFds);
        Assert.All(fds, fd => Assert.True(fd.IsOpen, $"{fd} was closed before it was acknowledged"));
        Assert.Equal(6, dispatcher.UnackedCount);
        Assert.Equal(0, dispatcher.WaitingCount);
    }

    [Fact]
    public void DispatchBatch_TenAcceptedTogether_EachWorkerGetsItsFiveInOneFrame()
    {
        var dispatcher = NewDispatcher();
        var a = Ready(dispatcher, 0);
        var b = Ready(dispatcher, 1);
        var fds = _files.Open(10);

        dispatcher.Dispatch(fds.Select(f => f.Fd).ToArray(), listenerId: 0);

        Assert.Equal([5], a.FrameSizes);
        Assert.Equal([5], b.FrameSizes);
        Assert.Equal(fds.Where((_, i) => i % 2 == 0).Select(f => f.Fd), a.SentFds);
        Assert.Equal(fds.Where((_, i) => i % 2 == 1).Select(f => f.Fd), b.SentFds);
        Assert.Equal(10, dispatcher.UnackedCount);
        Assert.All(fds, fd => Assert.True(fd.IsOpen, $"{fd} was closed before it was acknowledged"));
    }

    [Fact]
    public void DispatchBatch_OneWorkersChannelFull_ItsShareGoesToTheOther()
    {
        var dispatcher = NewDispatcher();
        var full = Ready(dispatcher, 0);
        var other = Ready(dispatcher, 1);
        full.SendErrno = Errno.EAGAIN;
        var fds = _files.Open(6).Select(f => f.Fd).ToArray();

        dispatcher.Dispatch(fds, listenerId: 0);

        Assert.Empty(full.Sent);
        Assert.Equal(0, dispatcher.UnackedOf(full));
        Assert.Equal(0, full.Dispatched);
        Assert.Equal(fds.Order(), other.SentFds.Order());
        Assert.Equal(6, other.Dispatched);
        Assert.Equal(6, dispatcher.Dispatched);
        Assert.Equal(0, dispatcher.WaitingCount);
    }

    [Fact]
    public void DispatchBatch_MoreThanAFrameForOneWorker_SentInFramesOfAtMostSixteen()
    {
        var dispatcher = NewDispatcher();
        var only = Ready(dispatcher, 0);
        var fds = _files.Open(20).Select(f => f.Fd).ToArray();

        dispatcher.Dispatch(fds, listenerId: 0);

        Assert.Equal([16, 4], only.FrameSizes);
        Assert.Equal(fds, only.SentFds);
        Assert.Equal(20, only.Sent.Select(s => s.Sequence).Distinct().Count());
    }

    [Fact]
    public void Dispatch_ThreeWorkers_EachGetsEveryThirdWithItsOwnSequence()
    {
        var dispatcher = NewDispatcher();
        var targets = new[] { Ready(dispatcher, 0), Ready(dispatcher, 1), Ready(dispatcher, 2) };

        for (var i = 0; i < 9; i++)
        {
            Dispatch(dispatcher);
        }

        Assert.All(targets, t => Assert.Equal(3, t.Sent.Count));
        var sequences = targets.SelectMany(t => t.Sent.Select(s => s.Sequence)).ToList();
        Assert.Equal(9, sequences.Distinct().Count());
        Assert.All(targets, t => Assert.Equal(3, t.Dispatched));
    }

    [Fact]
    public void Dispatch_WindowFull_ConnectionWaitsUntilAnAcknowledgement()
    {
        var dispatcher = NewDispatcher(window: 2);
        var a = Ready(dispatcher, 0);

        var fds = Enumerable.Range(0, 3).Select(_ => Dispatch(dispatcher)).ToList();

        Assert.Equal([fds[0].Fd, fds[1].Fd], a.SentFds);
        Assert.Equal(1, dispatcher.WaitingCount);
        Assert.True(fds[2].IsOpen);

        Assert.True(dispatcher.Acknowledge(a, a.Sent[0].Sequence, accepted: true));

        Assert.Equal([fds[0].Fd, fds[1].Fd, fds[2].Fd], a.SentFds);
        Assert.Equal(0, dispatcher.WaitingCount);
        Assert.Equal(2, dispatcher.UnackedCount);
    }

    [Fact]
    public void Dispatch_OneWorkersWindowFull_GoesToTheOther()
    {
        var dispatcher = NewDispatcher(window: 2);
        var a = Ready(dispatcher, 0);
        var b = Ready(dispatcher, 1);
        Dispatch(dispatcher);
        Dispatch(dispatcher);
        Dispatch(dispatcher);

        // a holds 2 (full), b holds 1: the next two both go to b, the one after that waits.
        var fourth = Dispatch(dispatcher);
        var fifth = Dispatch(dispatcher);

        Assert.Equal(2, a.Sent.Count);
        Assert.Equal(fourth.Fd, b.SentFds[1]);
        Assert.Equal(2, b.Sent.Count);
        Assert.Equal(1, dispatcher.WaitingCount);
        Assert.DoesNotContain(fifth.Fd, a.SentFds.Concat(b.SentFds));
    }

    [Fact]
    public void Dispatch_SendFailsOnOneWorker_GoesToTheNext()
    {
        var dispatcher = NewDispatcher();
        var a = Ready(dispatcher, 0);
        var b = Ready(dispatcher, 1);
        a.SendErrno = Errno.EAGAIN;

        var fd = Dispatch(dispatcher);

        Assert.Empty(a.Sent);
        Assert.Equal([fd.Fd], b.SentFds);
        Assert.Empty(a.Unacked);
    }

    [Fact]
    public void Dispatch_SendFailsEverywhere_WaitsWithFdOpen()
    {
        var dispatcher = NewDispatcher();
        var a = Ready(dispatcher, 0);
        a.SendErrno = Errno.EAGAIN;

        var fd = Dispatch(dispatcher);

        Assert.Equal(1, dispatcher.WaitingCount);
        Assert.True(fd.IsOpen);

        var b = Ready(dispatcher, 1);
        Assert.Equal([fd.Fd], b.SentFds);
        Assert.Empty(a.Sent);
    }

    [Fact]
    public void Dispatch_NoReadyWorker_WaitsAndGoesOutInOrderWhenOneIsReady()
    {
        var dispatcher = NewDispatcher();

        var fds = Enumerable.Range(0, 3).Select(_ => Dispatch(dispatcher)).ToList();

        Assert.Equal(3, dispatcher.WaitingCount);
        Assert.All(fds, fd => Assert.True(fd.IsOpen));

        var a = Ready(dispatcher, 0);

        Assert.Equal(fds.Select(f => f.Fd), a.SentFds);
        Assert.Equal(0, dispatcher.WaitingCount);
    }

    [Fact]
    public void Dispatch_ReadyWorkerNotBoundToListener_WaitsUntilItBinds()
    {
        var dispatcher = NewDispatcher();
        var a = Ready(dispatcher, 0, listeners: 0);

        var fd = Dispatch(dispatcher, listenerId: 1);

        Assert.Empty(a.Sent);
        Assert.Equal(1, dispatcher.WaitingCount);

        dispatcher.SetBound(a, 1, bound: true);

        var sent = Assert.Single(a.Sent);
        Assert.Equal((1, fd.Fd), (sent.ListenerId, sent.Fd));
    }

    [Fact]
    public void Dispatch_WorkerUnbound_GetsNoMoreForThatListener()
    {
        var dispatcher = NewDispatcher();
        var a = Ready(dispatcher, 0);
        var b = Ready(dispatcher, 1);

        dispatcher.SetBound(a, 0, bound: false);
        Dispatch(dispatcher);
        Dispatch(dispatcher);

        Assert.Empty(a.Sent);
        Assert.Equal(2, b.Sent.Count);
    }

    [Fact]
    public void Acknowledge_Accepted_ClosesSupervisorsCopy()
    {
        var dispatcher = NewDispatcher();
        var a = Ready(dispatcher, 0);
        var fd = Dispatch(dispatcher);

        Assert.True(dispatcher.Acknowledge(a, a.Sent[0].Sequence, accepted: true));

        Assert.False(fd.IsOpen);
        Assert.Equal(1, a.Accepted);
        Assert.Equal(0, dispatcher.UnackedCount);
        Assert.Equal(0, dispatcher.Redispatched);
    }

    [Fact]
    public void Acknowledge_Refused_RedispatchesToAnotherWorkerWithFdOpen()
    {
        var dispatcher = NewDispatcher();
        var a = Ready(dispatcher, 0);
        var b = Ready(dispatcher, 1);
        var fd = Dispatch(dispatcher);
        Assert.Equal([fd.Fd], a.SentFds);

        Assert.True(dispatcher.Acknowledge(a, a.Sent[0].Sequence, accepted: false));

        Assert.Equal([fd.Fd], b.SentFds);
        Assert.True(fd.IsOpen);
        Assert.Empty(a.Unacked);
        Assert.Single(b.Unacked);
        Assert.Equal(1, dispatcher.Redispatched);
        Assert.NotEqual(a.Sent[0].Sequence, b.Sent[0].Sequence);
    }

    [Fact]
    public void Acknowledge_RefusedWhenRefuserIsNextInTurn_StillGoesToAnotherWorker()
    {
        var dispatcher = NewDispatcher();
        var a = Ready(dispatcher, 0);
        var b = Ready(dispatcher, 1);
        var first = Dispatch(dispatcher);
        Dispatch(dispatcher);

        // Round-robin would pick a next; a just refused this connection, so it goes to b.
        Assert.True(dispatcher.Acknowledge(a, a.Sent[0].Sequence, accepted: false));

        Assert.Equal([first.Fd], a.SentFds);
        Assert.Equal(first.Fd, b.SentFds[^1]);
        Assert.True(first.IsOpen);
    }

    [Fact]
    public void Acknowledge_RefusedAfterUnbind_GoesToWorkerStillBound()
    {
        var dispatcher = NewDispatcher();
        var a = Ready(dispatcher, 0);
        var b = Ready(dispatcher, 1);
        var first = Dispatch(dispatcher);
        Dispatch(dispatcher);

        // A draining worker unbinds, then refuses what it had queued (the transport's order).
        dispatcher.SetBound(a, 0, bound: false);
        dispatcher.Acknowledge(a, a.Sent[0].Sequence, accepted: false);

        Assert.Equal(first.Fd, b.SentFds[^1]);
        Assert.Single(a.Sent);
    }

    [Fact]
    public void Acknowledge_RefusedByOnlyWorkerStillBound_OffersItToThatWorkerAgain()
    {
        var dispatcher = NewDispatcher();
        var a = Ready(dispatcher, 0);
        var fd = Dispatch(dispatcher);

        dispatcher.Acknowledge(a, a.Sent[0].Sequence, accepted: false);

        // No other worker: rather than hold it (and everything behind it), it goes out again.
        Assert.Equal([fd.Fd, fd.Fd], a.SentFds);
        Assert.True(fd.IsOpen);
        Assert.Equal(0, dispatcher.WaitingCount);
    }

    [Fact]
    public void Acknowledge_RefusedByOnlyWorkerThatUnbound_WaitsForTheNextReadyOne()
    {
        var dispatcher = NewDispatcher();
        var a = Ready(dispatcher, 0);
        var fd = Dispatch(dispatcher);
        dispatcher.SetBound(a, 0, bound: false);

        dispatcher.Acknowledge(a, a.Sent[0].Sequence, accepted: false);

        Assert.Equal(1, dispatcher.WaitingCount);
        Assert.True(fd.IsOpen);
        var b = Ready(dispatcher, 1);
        Assert.Equal([fd.Fd], b.SentFds);
    }

    [Fact]
    public void Acknowledge_UnknownSequence_ReturnsFalseAndChangesNothing()
    {
        var dispatcher = NewDispatcher();
        var a = Ready(dispatcher, 0);
        var fd = Dispatch(dispatcher);

        Assert.False(dispatcher.Acknowledge(a, a.Sent[0].Sequence + 1000, accepted: true));

        Assert.True(fd.IsOpen);
        Assert.Equal(1, dispatcher.UnackedCount);
    }

    [Fact]
    public void Acknowledge_Twice_SecondReturnsFalse()
    {
        var dispatcher = NewDispatcher();
        var a = Ready(dispatcher, 0);
        Dispatch(dispatcher);
        var sequence = a.Sent[0].Sequence;

        Assert.True(dispatcher.Acknowledge(a, sequence, accepted: true));
        Assert.False(dispatcher.Acknowledge(a, sequence, accepted: true));
        Assert.False(dispatcher.Acknowledge(a, sequence, accepted: false));
        Assert.Equal(0, dispatcher.WaitingCount);
    }

    [Fact]
    public void Acknowledge_AnotherWorkersSequence_ReturnsFalseAndKeepsItsFdOpen()
    {
        var dispatcher = NewDispatcher();
        var a = Ready(dispatcher, 0);
        var b = Ready(dispatcher, 1);
        Dispatch(dispatcher);
        var bFd = Dispatch(dispatcher);

        Assert.False(dispatcher.Acknowledge(a, b.Sent[0].Sequence, accepted: true));

        Assert.True(bFd.IsOpen);
        Assert.Single(b.Unacked);
    }

    [Fact]
    public void Lost_WorkerHoldingUnacked_RedispatchesEveryOneToTheOthers()
    {
        var dispatcher = NewDispatcher();
        var a = Ready(dispatcher, 0);
        var b = Ready(dispatcher, 1);
        var c = Ready(dispatcher, 2);
        var fds = Enumerable.Range(0, 6).Select(_ => Dispatch(dispatcher)).ToList();
        var held = a.SentFds.ToList();
        Assert.Equal(2, held.Count);

        Assert.Equal(2, dispatcher.Lost(a));

        var others = b.SentFds.Concat(c.SentFds).ToList();
        Assert.All(held, fd => Assert.Contains(fd, others));
        Assert.All(fds, fd => Assert.True(fd.IsOpen));
        Assert.Empty(a.Unacked);
        Assert.True(a.IsLost);
        Assert.Equal(2, dispatcher.Redispatched);
        Assert.Equal(6, dispatcher.UnackedCount);

        Dispatch(dispatcher);
        Dispatch(dispatcher);
        Assert.Equal(2, a.Sent.Count);
    }

    [Fact]
    public void Lost_LastWorker_ConnectionsWaitThenGoOldestFirstToTheNextReadyOne()
    {
        var dispatcher = NewDispatcher();
        var a = Ready(dispatcher, 0);
        var older = Dispatch(dispatcher);
        Now += 10;
        var newer = Dispatch(dispatcher);
        Now += 10;

        dispatcher.Lost(a);
        var waitingAlready = Dispatch(dispatcher);

        Assert.Equal(3, dispatcher.WaitingCount);
        var b = Ready(dispatcher, 1);
        Assert.Equal([older.Fd, newer.Fd, waitingAlready.Fd], b.SentFds);
    }

    [Fact]
    public void Lost_ThenAddReady_LostWorkerIsNotReadmitted()
    {
        var dispatcher = NewDispatcher();
        var a = Ready(dispatcher, 0);
        dispatcher.Lost(a);

        dispatcher.AddReady(a);
        Dispatch(dispatcher);

        Assert.Empty(a.Sent);
        Assert.False(a.IsReady);
        Assert.Equal(1, dispatcher.WaitingCount);
    }

    [Fact]
    public void Lost_AcknowledgementArrivingAfterwards_ReturnsFalse()
    {
        var dispatcher = NewDispatcher();
        var a = Ready(dispatcher, 0);
        var b = Ready(dispatcher, 1);
        var fd = Dispatch(dispatcher);
        var sequence = a.Sent[0].Sequence;
        dispatcher.Lost(a);

        Assert.False(dispatcher.Acknowledge(a, sequence, accepted: true));

        Assert.True(fd.IsOpen);
        Assert.Equal([fd.Fd], b.SentFds);
    }

    [Fact]
    public void StopDispatching_Worker_GetsNothingNewButItsAcknowledgementsCount()
    {
        var dispatcher = NewDispatcher();
        var a = Ready(dispatcher, 0);
        var b = Ready(dispatcher, 1);
        var held = Dispatch(dispatcher);

        dispatcher.StopDispatching(a);
        Dispatch(dispatcher);
        Dispatch(dispatcher);

        Assert.Single(a.Sent);
        Assert.Equal(2, b.Sent.Count);
        Assert.True(dispatcher.Acknowledge(a, a.Sent[0].Sequence, accepted: true));
        Assert.False(held.IsOpen);
    }

    [Fact]
    public void ExpireWaiting_AtMaxWait_KeepsAndJustPastIt_Closes()
    {
        var dispatcher = NewDispatcher();
        var fd = Dispatch(dispatcher);

        Now += (long)MaxWait.TotalMilliseconds;
        Assert.Equal(0, dispatcher.ExpireWaiting());
        Assert.True(fd.IsOpen);

        Now += 1;
        Assert.Equal(1, dispatcher.ExpireWaiting());
        Assert.False(fd.IsOpen);
        Assert.Equal(0, dispatcher.WaitingCount);
        Assert.Equal(1, dispatcher.Expired);

        var a = Ready(dispatcher, 0);
        Assert.Empty(a.Sent);
    }

    [Fact]
    public void ExpireWaiting_MixedAges_ClosesOnlyTheOldOnes()
    {
        var dispatcher = NewDispatcher();
        var old = Dispatch(dispatcher);
        Now += 3_000;
        var young = Dispatch(dispatcher);
        Now += 2_001;

        Assert.Equal(1, dispatcher.ExpireWaiting());

        Assert.False(old.IsOpen);
        Assert.True(young.IsOpen);
        var a = Ready(dispatcher, 0);
        Assert.Equal([young.Fd], a.SentFds);
    }

    [Fact]
    public void ExpireWaiting_SentConnections_AreNeverExpired()
    {
        var dispatcher = NewDispatcher();
        Ready(dispatcher, 0);
        var fd = Dispatch(dispatcher);

        Now += 60_000;

        Assert.Equal(0, dispatcher.ExpireWaiting());
        Assert.True(fd.IsOpen);
    }

    [Fact]
    public void Close_WithWaitingConnections_ClosesThemAndEveryLaterOne()
    {
        var dispatcher = NewDispatcher();
        var waiting = Enumerable.Range(0, 3).Select(_ => Dispatch(dispatcher)).ToList();

        Assert.Equal(3, dispatcher.Close());

        Assert.All(waiting, fd => Assert.False(fd.IsOpen));
        var late = Dispatch(dispatcher);
        Assert.False(late.IsOpen);
        Assert.Equal(0, dispatcher.WaitingCount);
    }

    [Fact]
    public async Task Dispatch_WaitingQueueFull_BlocksUntilAWorkerIsReady()
    {
        var (dispatcher, first, second, blocked) = await DispatchIntoAFullWaitingQueueAsync();

        var a = Ready(dispatcher, 0);

        await blocked.WaitAsync(BlockedDispatchTimeout);
        Assert.Equal([first.Fd, second.Fd], a.SentFds);
    }

    [Fact]
    public async Task Dispatch_WaitingQueueFull_AWorkerReadyMeanwhileGetsTheWaitingOneAtOnceNotInTheBlockedBatch()
    {
        var (dispatcher, first, second, blocked) = await DispatchIntoAFullWaitingQueueAsync();

        // AddReady runs on another thread meanwhile, while the accept thread waits inside its batch for room.
        var a = Ready(dispatcher, 0);
        await blocked.WaitAsync(BlockedDispatchTimeout);

        Assert.Equal([first.Fd, second.Fd], a.SentFds);
        Assert.Equal([1, 1], a.FrameSizes);
    }

    // One connection waits (the queue holds one), a second Dispatch blocks: the accept thread stays in Dispatch,
    // leaving further connections in the kernel backlog. Proving that it does not return takes a bounded look;
    // 300 ms is that look, not a wait for a condition.
    private async Task<(Dispatcher Dispatcher, TestFd First, TestFd Second, Task Blocked)> DispatchIntoAFullWaitingQueueAsync()
    {
        var dispatcher = NewDispatcher(maxWaiting: 1);
        var first = Dispatch(dispatcher);
        var second = _files.Open();
        var blocked = Task.Run(() => dispatcher.Dispatch([second.Fd], 0));
        await Task.WhenAny(blocked, Task.Delay(TimeSpan.FromMilliseconds(300)));
        Assert.False(blocked.IsCompleted, "Dispatch returned while the waiting queue was full");
        return (dispatcher, first, second, blocked);
    }

    [Fact]
    public async Task Dispatch_WaitingQueueFull_UnblocksWhenTheWaitingOneExpires()
    {
        var dispatcher = NewDispatcher(maxWaiting: 1);
        var first = Dispatch(dispatcher);
        var second = _files.Open();
        var blocked = Task.Run(() => dispatcher.Dispatch([second.Fd], 0));

        Now += (long)MaxWait.TotalMilliseconds + 1;

        await blocked.WaitAsync(BlockedDispatchTimeout);
        Assert.False(first.IsOpen);
        Assert.True(second.IsOpen);
        Assert.Equal(1, dispatcher.WaitingCount);
    }

    [Fact]
    public async Task Dispatch_WaitingQueueFull_UnblocksOnCloseAndClosesTheFd()
    {
        var dispatcher = NewDispatcher(maxWaiting: 1);
        Dispatch(dispatcher);
        var second = _files.Open();
        var blocked = Task.Run(() => dispatcher.Dispatch([second.Fd], 0));

        dispatcher.Close();

        await blocked.WaitAsync(BlockedDispatchTimeout);
        Assert.False(second.IsOpen);
    }

    [Fact]
    public void Dispatch_AffinityNamesAWorker_GoesThereInsteadOfRoundRobin()
    {
        var dispatcher = NewDispatcher();
        var a = Ready(dispatcher, 0);
        var b = Ready(dispatcher, 1);

        var fds = Enumerable.Range(0, 4).Select(_ => _files.Open()).ToList();
        foreach (var fd in fds)
        {
            dispatcher.Dispatch([fd.Fd], 0, workers: [1]);
        }

        Assert.Empty(a.SentFds);
        Assert.Equal(fds.Select(f => f.Fd), b.SentFds);
    }

    [Fact]
    public void Dispatch_AffinityNamesAWorkerThatIsGone_GoesRoundRobin()
    {
        var dispatcher = NewDispatcher();
        var a = Ready(dispatcher, 0);
        var b = Ready(dispatcher, 1);
        dispatcher.Lost(b);

        var fd = _files.Open();
        dispatcher.Dispatch([fd.Fd], 0, workers: [1]);

        Assert.Equal([fd.Fd], a.SentFds);
    }

    [Fact]
    public void Dispatch_AffinityWorkerRefuses_AnotherWorkerTakesIt()
    {
        var dispatcher = NewDispatcher();
        var a = Ready(dispatcher, 0);
        var b = Ready(dispatcher, 1);
        var fd = _files.Open();
        dispatcher.Dispatch([fd.Fd], 0, workers: [1]);

        Assert.True(dispatcher.Acknowledge(b, b.Sent.Single().Sequence, accepted: false));

        Assert.Equal([fd.Fd], a.SentFds);
        Assert.True(fd.IsOpen);
    }

    private sealed class FakeTarget(int id) : DispatchTarget
    {
        private readonly List<(int ListenerId, long Sequence, int Fd)> _sent = [];

        public override int Id => id;

        // 0: the send succeeds; otherwise the errno it fails with (EAGAIN: the channel is full).
        public int SendErrno { get; set; }

        public IReadOnlyList<(int ListenerId, long Sequence, int Fd)> Sent => _sent;

        public IReadOnlyList<int> SentFds => [.. _sent.Select(s => s.Fd)];

        // Frames sent, each with the number of connections it carried.
        public List<int> FrameSizes { get; } = [];

        protected internal override int SendConnections(ReadOnlySpan<OutgoingConnection> connections)
        {
            if (SendErrno != 0)
            {
                return SendErrno;
            }

            foreach (var connection in connections)
            {
                _sent.Add((connection.ListenerId, connection.Sequence, connection.Fd));
            }

            FrameSizes.Add(connections.Length);
            return 0;
        }
    }
}
