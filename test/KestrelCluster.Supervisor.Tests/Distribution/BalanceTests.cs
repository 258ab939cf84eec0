using System.Net;
using System.Net.Sockets;
using KestrelCluster.Supervisor.Distribution;
using KestrelCluster.Tests.Infrastructure;

namespace KestrelCluster.Tests.Distribution;

// The picking logic of least-connections and sticky, with real fds the dispatcher owns.
public sealed class BalanceTests : IDisposable
{
    private readonly TestFiles _files = new();

    public void Dispose() => _files.Dispose();

    private static Dispatcher NewDispatcher(BalanceMode balance, int window = Dispatcher.DefaultWindow)
        => new(TimeSpan.FromSeconds(5), window, balance: balance);

    private static Target Ready(Dispatcher dispatcher, int id)
    {
        var target = new Target(id);
        dispatcher.SetBound(target, 0, bound: true);
        dispatcher.AddReady(target);
        return target;
    }

    private void Dispatch(Dispatcher dispatcher, ulong key = 0) => dispatcher.Dispatch([_files.Open().Fd], 0, [key]);

    private static void AcceptAll(Dispatcher dispatcher, Target target)
    {
        foreach (var sequence in target.Sent.ToList())
        {
            dispatcher.Acknowledge(target, sequence, accepted: true);
        }

        target.Sent.Clear();
    }

    private static ulong KeyOf(string address) => ClientKey.Hash(IPAddress.Parse(address).GetAddressBytes());

    [Fact]
    public void LeastConnections_OneWorkerHoldsConnections_NewOnesGoToTheOther()
    {
        var dispatcher = NewDispatcher(BalanceMode.LeastConnections);
        var a = Ready(dispatcher, 0);
        var b = Ready(dispatcher, 1);
        dispatcher.ReportOpen(a, 10);

        for (var i = 0; i < 10; i++)
        {
            Dispatch(dispatcher);
            AcceptAll(dispatcher, a);
            AcceptAll(dispatcher, b);
        }

        Assert.Equal(0, a.Dispatched);
        Assert.Equal(10, b.Dispatched);

        // Now level (10 each): they alternate.
        for (var i = 0; i < 10; i++)
        {
            Dispatch(dispatcher);
            AcceptAll(dispatcher, a);
            AcceptAll(dispatcher, b);
        }

        Assert.Equal(5, a.Dispatched);
        Assert.Equal(15, b.Dispatched);
    }

    [Fact]
    public void LeastConnections_ReportAfterCloses_CountsOnlyWhatIsStillOpen()
    {
        var dispatcher = NewDispatcher(BalanceMode.LeastConnections);
        var a = Ready(dispatcher, 0);
        var b = Ready(dispatcher, 1);
        for (var i = 0; i < 8; i++)
        {
            Dispatch(dispatcher);
        }

        AcceptAll(dispatcher, a);
        AcceptAll(dispatcher, b);
        Assert.Equal(4, a.EstimatedOpen);
        Assert.Equal(4, b.EstimatedOpen);

        // b's clients went away; a's are still there.
        dispatcher.ReportOpen(a, 4);
        dispatcher.ReportOpen(b, 0);
        for (var i = 0; i < 4; i++)
        {
            Dispatch(dispatcher);
        }

        Assert.Equal(4, a.Dispatched);
        Assert.Equal(8, b.Dispatched);
    }

    [Fact]
    public void LeastConnections_UnacknowledgedCountAsOpen()
    {
        var dispatcher = NewDispatcher(BalanceMode.LeastConnections);
        var a = Ready(dispatcher, 0);
        var b = Ready(dispatcher, 1);

        for (var i = 0; i < 6; i++)
        {
            Dispatch(dispatcher);
        }

        Assert.Equal(3, a.Dispatched);
        Assert.Equal(3, b.Dispatched);
    }

    [Fact]
    public void Sticky_SameKey_AlwaysSameWorker()
    {
        var dispatcher = NewDispatcher(BalanceMode.Sticky);
        var targets = Enumerable.Range(0, 3).Select(i => Ready(dispatcher, i)).ToList();
        var key = KeyOf("127.0.0.1");

        for (var i = 0; i < 100; i++)
        {
            Dispatch(dispatcher, key);
            targets.ForEach(t => AcceptAll(dispatcher, t));
        }

        Assert.Single(targets, t => t.Dispatched == 100);
        Assert.Equal(2, targets.Count(t => t.Dispatched == 0));
    }

    [Fact]
    public void Sticky_ManyKeys_SpreadOverAllWorkers()
    {
        var dispatcher = NewDispatcher(BalanceMode.Sticky);
        var targets = Enumerable.Range(0, 3).Select(i => Ready(dispatcher, i)).ToList();

        for (var i = 1; i <= 300; i++)
        {
            Dispatch(dispatcher, KeyOf($"10.0.{i / 250}.{i % 250}"));
            targets.ForEach(t => AcceptAll(dispatcher, t));
        }

        // Each of 3 workers gets a fair part of 300 addresses (expected 100; far from 0 or 300).
        Assert.All(targets, t => Assert.InRange(t.Dispatched, 60, 140));
    }

    [Fact]
    public void Sticky_WorkerRemoved_OnlyItsKeysMove()
    {
        var keys = Enumerable.Range(1, 200).Select(i => KeyOf($"192.168.1.{i}")).ToList();
        var before = Owners(keys, [0, 1, 2]);
        var after = Owners(keys, [0, 2]);

        for (var i = 0; i < keys.Count; i++)
        {
            if (before[i] != 1)
            {
                Assert.Equal(before[i], after[i]);
            }
        }

        Assert.Contains(1, before);
    }

    [Fact]
    public void Sticky_ChosenWorkerWindowFull_NextRankedTakesIt()
    {
        var dispatcher = NewDispatcher(BalanceMode.Sticky, window: 1);
        var a = Ready(dispatcher, 0);
        var b = Ready(dispatcher, 1);
        var key = KeyOf("127.0.0.2");

        Dispatch(dispatcher, key);
        Dispatch(dispatcher, key);

        Assert.Equal(1, a.Dispatched);
        Assert.Equal(1, b.Dispatched);
    }

    [Fact]
    public void Sticky_NoKey_RoundRobin()
    {
        var dispatcher = NewDispatcher(BalanceMode.Sticky);
        var a = Ready(dispatcher, 0);
        var b = Ready(dispatcher, 1);

        for (var i = 0; i < 4; i++)
        {
            Dispatch(dispatcher, key: 0);
        }

        Assert.Equal(2, a.Dispatched);
        Assert.Equal(2, b.Dispatched);
    }

    [Fact]
    public void ClientKey_OfLoopbackConnections_DependsOnAddressNotPort()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();

        ulong KeyOfConnectionFrom(string address)
        {
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            client.Bind(new IPEndPoint(IPAddress.Parse(address), 0));
            client.Connect(listener.LocalEndPoint!);
            using var accepted = listener.Accept();
            return ClientKey.Of((int)accepted.SafeHandle.DangerousGetHandle());
        }

        var first = KeyOfConnectionFrom("127.0.0.1");
        Assert.Equal(KeyOf("127.0.0.1"), first);
        Assert.Equal(first, KeyOfConnectionFrom("127.0.0.1"));
        Assert.NotEqual(first, KeyOfConnectionFrom("127.0.0.2"));
    }

    [Fact]
    public void ClientKey_OfNonSocket_IsZero()
    {
        var fd = _files.Open();
        Assert.Equal(0UL, ClientKey.Of(fd.Fd));
    }

    private List<int> Owners(List<ulong> keys, int[] ids)
    {
        var dispatcher = NewDispatcher(BalanceMode.Sticky);
        var targets = ids.Select(id => Ready(dispatcher, id)).ToList();
        var owners = new List<int>();
        foreach (var key in keys)
        {
            Dispatch(dispatcher, key);
            var owner = targets.Single(t => t.Sent.Count == 1);
            owners.Add(owner.Id);
            targets.ForEach(t => AcceptAll(dispatcher, t));
        }

        return owners;
    }

    private sealed class Target(int id) : DispatchTarget
    {
        public List<long> Sent { get; } = [];

        public override int Id => id;

        protected internal override int SendConnections(ReadOnlySpan<OutgoingConnection> connections)
        {
            foreach (var connection in connections)
            {
                Sent.Add(connection.Sequence);
            }

            return 0;
        }
    }
}
