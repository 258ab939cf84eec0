using System.Net.Sockets;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;
using KestrelCluster.Supervisor.Accept;
using KestrelCluster.Supervisor.Distribution;

namespace KestrelCluster.Supervisor.Workers;

internal interface IWorkerSessionHandler
{
    BindOutcome Bind(WorkerSession session, string requested);

    void Ready(WorkerSession session);

    // violation: the worker broke the protocol, so it cannot be trusted with the connections it holds. The handler
    // returns the session's unacknowledged connections (Dispatcher.Lost) once the worker can no longer serve them:
    // after killing it, on a violation, so that no connection is served twice.
    void Closed(WorkerSession session, string reason, bool violation);

    // A Message frame: to the supervisor (logged) or to every other worker (relayed).
    void Message(WorkerSession session, int target, byte[] json);

    // A Hub frame: relayed at once, on the sender's receive loop, so each sender's frames stay in order.
    void RelayHub(WorkerSession session, int target, ReadOnlySpan<byte> payload);
}

// The supervisor's end of one authenticated worker channel.
internal sealed class WorkerSession : DispatchTarget, IDisposable
{
    private readonly ChannelSocket _socket;
    private readonly Dispatcher _dispatcher;
    private readonly IWorkerSessionHandler _handler;
    private readonly bool _passListeningSockets;
    private readonly CancellationTokenSource _closing = new();
    private readonly Func<long> _clock;
    private int _closed;

    public WorkerSession(WorkerInstance instance, ChannelSocket socket, PeerCredentials peer, Dispatcher dispatcher, IWorkerSessionHandler handler, bool passListeningSockets = false, Func<long>? clock = null)
    {
        _clock = clock ?? (() => Environment.TickCount64);
        LastStatusAt = _clock();
        _passListeningSockets = passListeningSockets;
        Instance = instance;
        Peer = peer;
        _socket = socket;
        _dispatcher = dispatcher;
        _handler = handler;
    }

    public WorkerInstance Instance { get; }

    public PeerCredentials Peer { get; }

    public override int Id => Instance.SlotId;

    // From the worker's last Status frame (sent every second, which is also its heartbeat).
    public int OpenConnections { get; private set; }

    public long LastStatusAt { get; private set; }

    // From the Ready frame; none from a worker that predates the field.
    public WorkerFeatures Features { get; private set; }

    public void Start() => _ = Task.Run(ReceiveLoopAsync);

    protected internal override int SendConnections(ReadOnlySpan<OutgoingConnection> connections)
    {
        Span<byte> frame = stackalloc byte[ConnectionsFrame.MaxSize];
        Span<int> fds = stackalloc int[connections.Length];
        var writer = ConnectionsFrame.Begin(frame, connections.Length);
        for (var i = 0; i < connections.Length; i++)
        {
            ConnectionsFrame.Add(ref writer, connections[i].ListenerId, connections[i].Sequence);
            fds[i] = connections[i].Fd;
        }

        // One SOCK_SEQPACKET message: the kernel takes all of it or none.
        return _socket.TrySend(writer.Written, fds);
    }

    public void SendWelcome()
    {
        Span<byte> frame = stackalloc byte[WelcomeFrame.Size];
        _socket.Send(WelcomeFrame.Write(frame, Instance.SlotId, Instance.Generation));
    }

    /// <summary>Passes a JSON message on without waiting; false when the worker's channel is full or gone.</summary>
    public bool SendMessage(int sender, ReadOnlySpan<byte> json)
    {
        return _socket.TrySend(MessageFrame.Write(new byte[MessageFrame.SizeFor(json.Length)], sender, json)) == 0;
    }

    /// <summary>Passes a whole Hub frame on without waiting; 0 or the errno (EAGAIN when the worker's channel is full).</summary>
    public int TrySendHubFrame(ReadOnlySpan<byte> frame) => _socket.TrySend(frame);

    /// <summary>Asks the worker to drain and exit. Returns false when the channel is already gone.</summary>
    public bool SendStop()
    {
        Span<byte> frame = stackalloc byte[StopFrame.Size];
        return _socket.TrySend(StopFrame.Write(frame)) == 0;
    }

    private async Task ReceiveLoopAsync()
    {
        var buffer = new byte[FrameLimits.MaxFrameSize];
        var fds = new int[FrameLimits.MaxFdsPerFrame];
        var reason = "end of stream";
        var violation = true;
        try
        {
            while (!_closing.IsCancellationRequested)
            {
                await _socket.WaitReadableAsync(_closing.Token).ConfigureAwait(false);
                while (true)
                {
                    var status = _socket.TryReceive(buffer, fds, out var length, out var fdCount);
                    if (status == ReceiveStatus.WouldBlock)
                    {
                        break;
                    }

                    if (status == ReceiveStatus.Closed)
                    {
                        violation = false;
                        return;
                    }

                    if (status == ReceiveStatus.Malformed)
                    {
                        reason = "an oversized frame";
                        return;
                    }

                    if (fdCount > 0 || status == ReceiveStatus.FdsTruncated)
                    {
                        // Workers never pass fds to the supervisor.
                        ChannelSocket.CloseAll(fds.AsSpan(0, fdCount));
                        reason = "a frame carrying file descriptors";
                        return;
                    }

                    Handle(buffer.AsSpan(0, length));
                }
            }
        }
        catch (OperationCanceledException)
        {
            reason = "closed by the supervisor";
            violation = false;
        }
        catch (InvalidFrameException ex)
        {
            reason = $"a malformed frame ({ex.Message})";
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            reason = ex.Message;
            violation = false;
        }
        catch (Exception ex)
        {
            // A fault of ours while handling a frame: name it, rather than log "end of stream" for a live worker.
            reason = $"an unexpected {ex.GetType().Name} while handling its frame ({ex.Message})";
        }
        finally
        {
            Close(reason, violation);
        }
    }

    // internal: the fuzz tests feed it frames directly.
    internal void Handle(ReadOnlySpan<byte> frame)
    {
        var type = FrameReader.TypeOf(frame);
        switch (type)
        {
            case FrameType.Acks:
                var acks = AcksFrame.Read(frame, out var count);
                for (var i = 0; i < count; i++)
                {
                    var (sequence, accepted) = AcksFrame.Next(ref acks);
                    if (!_dispatcher.Acknowledge(this, sequence, accepted))
                    {
                        throw new InvalidFrameException($"acknowledgement of connection {sequence}, which this worker does not hold");
                    }
                }

                acks.EnsureEnd();
                break;
            case FrameType.Bind:
                var (requestId, requested) = BindFrame.Read(frame);
                var outcome = _handler.Bind(this, requested);
                if (outcome.Listener is { } listener)
                {
                    _dispatcher.SetBound(this, listener.Id, bound: true);
                }

                SendBindResult(requestId, outcome);
                break;
            case FrameType.Message:
                var target = MessageFrame.Read(frame, out var json);
                if (target is not (MessageTargets.Supervisor or MessageTargets.OtherWorkers))
                {
                    throw new InvalidFrameException($"message target {target}");
                }

                _handler.Message(this, target, json.ToArray());
                break;
            case FrameType.Hub:
                var hubTarget = HubFrame.Read(frame, out var payload);
                if (hubTarget != MessageTargets.OtherWorkers && hubTarget <= 0)
                {
                    throw new InvalidFrameException($"hub target {hubTarget}");
                }

                _handler.RelayHub(this, hubTarget, payload);
                break;
            case FrameType.Status:
                OpenConnections = Math.Max(0, StatusFrame.Read(frame));
                _dispatcher.ReportOpen(this, OpenConnections);
                LastStatusAt = _clock();
                break;
            case FrameType.Ready:
                Features = ReadyFrame.Read(frame);
                _handler.Ready(this);
                break;
            case FrameType.Unbind:
                var listenerId = UnbindFrame.Read(frame);
                if (listenerId is >= 0 and < ListenerRegistry.MaxListeners)
                {
                    _dispatcher.SetBound(this, listenerId, bound: false);
                }

                break;
            default:
                throw new InvalidFrameException($"unexpected {type} frame");
        }
    }

    private void SendBindResult(int requestId, BindOutcome outcome)
    {
        Span<byte> buffer = stackalloc byte[BindResultFrame.MaxSize];
        var frame = BindResultFrame.Write(buffer, requestId, outcome.Listener?.Id ?? -1, outcome.Error, outcome.Message);
        if (_passListeningSockets && outcome.Listener is { } listener)
        {
            // --balance shared: the worker accepts on its slot's socket (the kernel duplicates the fd into it).
            _socket.Send(frame, [(int)listener.HandleFor(Id)]);
            return;
        }

        _socket.Send(frame);
    }

    public void Close(string reason, bool violation = false)
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }

        _closing.Cancel();
        _handler.Closed(this, reason, violation);
        _socket.Dispose();
    }

    public void Dispose() => Close("disposed");
}
