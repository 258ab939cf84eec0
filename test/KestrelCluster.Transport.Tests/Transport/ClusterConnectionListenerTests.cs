using System.Net.Sockets;
using KestrelCluster.Protocol;
using KestrelCluster.Tests.Infrastructure;
using KestrelCluster.Transport;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Logging.Abstractions;

namespace KestrelCluster.Tests.Transport;

// The worker's side of connection passing, without a supervisor process: a real channel joined to a supervisor end
// played by the test, real fds passed with SCM_RIGHTS, and Kestrel's part played by calling AcceptAsync/UnbindAsync.
public sealed class ClusterConnectionListenerTests
{
    private const int ListenerId = 3;

    private static readonly TimeSpan Timeout = SupervisorEnd.Timeout;

    [Fact]
    public async Task AcceptAsync_FrameOfConnectionsArrivesWhileKestrelWaits_AllAcknowledgedInOneFrameBeforeTheFirstIsHandedOut()
    {
        await using var supervisor = await SupervisorEnd.StartAsync();
        await using var listener = NewListener(supervisor);
        using var sockets = ConnectedSockets.Open(supervisor.Folder, FrameLimits.MaxFdsPerFrame);
        var firstAccept = listener.AcceptAsync().AsTask();

        supervisor.Pass(ListenerId, [.. sockets.Server.Select((s, i) => (100L + i, (int)s.Handle))]);
        var connections = new List<ConnectionContext> { Assert.IsAssignableFrom<ConnectionContext>(await firstAccept.WaitAsync(Timeout)) };

        // The supervisor keeps each socket until its ack: by the time Kestrel has the first one, the whole frame is acknowledged.
        supervisor.ReadAvailable();
        var acks = Assert.Single(supervisor.AcksFrames);
        Assert.Equal(Enumerable.Range(100, FrameLimits.MaxFdsPerFrame).Select(i => ((long)i, true)), acks);

        for (var i = 1; i < FrameLimits.MaxFdsPerFrame; i++)
        {
            connections.Add(Assert.IsAssignableFrom<ConnectionContext>(await listener.AcceptAsync().AsTask().WaitAsync(Timeout)));
        }

        supervisor.ReadAvailable();
        Assert.Single(supervisor.AcksFrames);
        Assert.Equal(Enumerable.Range(0, FrameLimits.MaxFdsPerFrame), await ReadOneByteEachAsync(sockets, connections));
    }

    [Fact]
    public async Task AcceptAsync_ManyConnectionsWaitingWhileKestrelWasBusy_EachAcknowledgedOnceInFewFrames()
    {
        const int Frames = 7;
        const int Connections = Frames * FrameLimits.MaxFdsPerFrame;
        await using var supervisor = await SupervisorEnd.StartAsync();
        await using var listener = NewListener(supervisor);
        using var sockets = ConnectedSockets.Open(supervisor.Folder, Connections);
        for (var frame = 0; frame < Frames; frame++)
        {
            supervisor.Pass(ListenerId, [.. sockets.Server.Skip(frame * FrameLimits.MaxFdsPerFrame).Take(FrameLimits.MaxFdsPerFrame).Select((s, i) => ((long)(frame * FrameLimits.MaxFdsPerFrame) + i, (int)s.Handle))]);
        }

        await supervisor.SyncAsync();
        Assert.Empty(supervisor.AcksFrames);
        var connections = new List<ConnectionContext>();
        for (var i = 0; i < Connections; i++)
        {
            connections.Add(Assert.IsAssignableFrom<ConnectionContext>(await listener.AcceptAsync().AsTask().WaitAsync(Timeout)));
        }

        supervisor.ReadAvailable();
        Assert.Equal(Enumerable.Range(0, Connections).Select(i => ((long)i, true)), supervisor.Acks);
        // At most 64 a frame (an Acks frame stays small), so two frames for 112 connections.
        Assert.Equal(2, supervisor.AcksFrames.Count);
        Assert.Equal(Enumerable.Range(0, Connections), await ReadOneByteEachAsync(sockets, connections));
    }

    [Fact]
    public async Task UnbindAsync_ConnectionsWaitingAndStillArriving_AllRefusedAndClosedAndAcceptReturnsNull()
    {
        await using var supervisor = await SupervisorEnd.StartAsync();
        await using var listener = NewListener(supervisor);
        using var files = new TestFiles();
        var fds = files.Open(8);
        supervisor.Pass(ListenerId, [.. fds.Take(4).Select((f, i) => (1L + i, f.Fd))]);
        await supervisor.SyncAsync();

        await listener.UnbindAsync().AsTask().WaitAsync(Timeout);
        supervisor.Pass(ListenerId, [.. fds.Skip(4).Select((f, i) => (5L + i, f.Fd))]);

        // Refused, so the supervisor passes each to another worker; none is accepted here.
        var acks = await supervisor.AcksAsync(count: 8);
        Assert.Equal(Enumerable.Range(1, 8).Select(i => ((long)i, false)), acks.Order());
        Assert.Equal(ListenerId, Assert.Single(supervisor.Unbound));
        Assert.Null(await listener.AcceptAsync().AsTask().WaitAsync(Timeout));
        // Every passed copy was closed: only the test's own 8 fds point at the files.
        Assert.Equal(8, files.OpenFdsToThem());
    }

    [Fact]
    public async Task UnbindAsync_KestrelWaitingInAcceptAsync_AcceptReturnsNullAndTheSupervisorIsTold()
    {
        await using var supervisor = await SupervisorEnd.StartAsync();
        await using var listener = NewListener(supervisor);
        var accept = listener.AcceptAsync().AsTask();

        await listener.UnbindAsync().AsTask().WaitAsync(Timeout);

        Assert.Null(await accept.WaitAsync(Timeout));
        supervisor.ReadAvailable();
        Assert.Equal(ListenerId, Assert.Single(supervisor.Unbound));
        Assert.Empty(supervisor.AcksFrames);
    }

    private static ClusterConnectionListener NewListener(SupervisorEnd supervisor)
    {
        var listener = new ClusterConnectionListener(
            ListenerId,
            new UnixDomainSocketEndPoint(Path.Combine(supervisor.Folder, "app.sock")),
            supervisor.Channel,
            new SocketConnectionContextFactory(new SocketConnectionFactoryOptions(), NullLogger.Instance));
        supervisor.Channel.Register(listener);
        return listener;
    }

    // Client i sends byte i; each accepted connection reads what arrived on it: the passed sockets, each handed out once.
    private static async Task<List<int>> ReadOneByteEachAsync(ConnectedSockets sockets, List<ConnectionContext> connections)
    {
        for (var i = 0; i < sockets.Client.Count; i++)
        {
            sockets.Client[i].Send([(byte)i]);
        }

        using var timeout = new CancellationTokenSource(Timeout);
        var received = new List<int>();
        foreach (var connection in connections)
        {
            var read = await connection.Transport.Input.ReadAsync(timeout.Token);
            received.Add(read.Buffer.FirstSpan[0]);
            connection.Transport.Input.AdvanceTo(read.Buffer.End);
            await connection.DisposeAsync();
        }

        received.Sort();
        return received;
    }

    // Connected Unix stream sockets, as the supervisor's accept gives them: the server ends are passed, the clients talk.
    private sealed class ConnectedSockets : IDisposable
    {
        public List<Socket> Client { get; } = [];

        public List<Socket> Server { get; } = [];

        public static ConnectedSockets Open(string folder, int count)
        {
            var sockets = new ConnectedSockets();
            var endPoint = new UnixDomainSocketEndPoint(Path.Combine(folder, "clients.sock"));
            using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            listener.Bind(endPoint);
            listener.Listen(count);
            for (var i = 0; i < count; i++)
            {
                var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                sockets.Client.Add(client);
                client.Connect(endPoint);
                sockets.Server.Add(listener.Accept());
            }

            return sockets;
        }

        public void Dispose()
        {
            foreach (var socket in Client.Concat(Server))
            {
                socket.Dispose();
            }
        }
    }
}
