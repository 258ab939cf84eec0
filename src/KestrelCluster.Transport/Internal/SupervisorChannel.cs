using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace KestrelCluster.Transport;

// The worker's end of the channel to the supervisor: binds endpoints, receives passed connections,
// acknowledges each one, and stops the app when the supervisor asks or disappears.
internal sealed class SupervisorChannel : IAsyncDisposable
{
    private readonly ClusterTransportOptions _options;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ConnectionDrain _drain;
    private readonly ILogger _logger;
    private readonly string _channelPath;
    private readonly string _token;
    private readonly SemaphoreSlim _connectLock = new(1, 1);
    private readonly ConcurrentDictionary<int, TaskCompletionSource<BindResult>> _pendingBinds = new();
    private readonly ConcurrentDictionary<int, ClusterConnectionListener> _listeners = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _sendLock = new();
    private ChannelSocket? _socket;
    private Task? _receiveLoop;
    private int _nextRequestId;
    private Thread? _statusThread;
    private int _statusPending;
    private volatile bool _closed;
    private readonly int _fdLimit;
    private readonly int _fdLimitReserveFrom;
    private bool _atFdLimit;

    public SupervisorChannel(IOptions<ClusterTransportOptions> options, IHostApplicationLifetime lifetime, ConnectionDrain drain, ILogger<SupervisorChannel> logger)
    {
        _options = options.Value;
        _lifetime = lifetime;
        _drain = drain;
        _logger = logger;
        _channelPath = Environment.GetEnvironmentVariable(ClusterEnvironment.Channel) ?? throw new InvalidOperationException($"{ClusterEnvironment.Channel} is not set.");
        _token = Environment.GetEnvironmentVariable(ClusterEnvironment.Token) ?? "";
        (_fdLimit, _fdLimitReserveFrom) = FdReserve();
    }

    // A worker out of fds is broken, not just full: the runtime opens every assembly it loads lazily (and
    // aborts with "Out of memory" when it cannot), and the app opens files and outgoing connections. So passed
    // connections may not take the last eighth of the fd limit (at least 64 fds): the kernel hands out the
    // lowest free fd, so a passed fd at or above that mark means the reserve is being eaten into.
    private static (int Limit, int ReserveFrom) FdReserve()
    {
        if (Libc.GetRLimit(Libc.RLIMIT_NOFILE, out var limit) != 0 || limit.Current >= int.MaxValue)
        {
            return (-1, int.MaxValue);
        }

        var current = (int)limit.Current;
        return (current, current - Math.Max(64, current / 8));
    }

    public int WorkerId { get; private set; } = -1;

    public int Generation { get; private set; }

    public async Task<BindResult> BindAsync(EndPoint endPoint, CancellationToken cancellationToken)
    {
        await EnsureConnectedAsync(cancellationToken).ConfigureAwait(false);

        var requestId = Interlocked.Increment(ref _nextRequestId);
        var completion = new TaskCompletionSource<BindResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pendingBinds[requestId] = completion;
        try
        {
            Span<byte> buffer = stackalloc byte[BindFrame.MaxSize];
            Send(BindFrame.Write(buffer, requestId, EndpointText.Format(endPoint)));

            if (_closed)
            {
                throw SupervisorGone();
            }

            return await completion.Task.WaitAsync(_options.SupervisorTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new IOException($"The kestrel-cluster supervisor did not answer the bind of {endPoint} within {_options.SupervisorTimeout.TotalSeconds:0} s.");
        }
        finally
        {
            _pendingBinds.TryRemove(requestId, out _);
        }
    }

    // Set once by SupervisedWorker's registration: where Message frames go.
    public Action<ClusterMessage>? MessageReceived { get; set; }

    public async ValueTask SendMessageAsync(int target, byte[] json, CancellationToken cancellationToken)
    {
        if (json.Length > MessageFrame.MaxJsonBytes)
        {
            throw new ArgumentException($"A cluster message can hold at most {MessageFrame.MaxJsonBytes} bytes of JSON; this one has {json.Length}.", nameof(json));
        }

        await EnsureConnectedAsync(cancellationToken).ConfigureAwait(false);
        var frame = MessageFrame.Write(new byte[MessageFrame.SizeFor(json.Length)], target, json);
        if (_closed)
        {
            throw SupervisorGone();
        }

        Send(frame);
    }

    // Set once by the SignalR backplane when the app uses it: where Hub frames go. Called on the receive loop.
    public HubFrameHandler? HubFrameReceived { get; set; }

    /// <summary>Sends one backplane frame to every other worker (target -2) or to one, by the relay id it came from.</summary>
    public async ValueTask SendHubAsync(int target, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        if (payload.Length > HubFrame.MaxPayloadBytes)
        {
            throw new InvalidOperationException($"A SignalR message relayed to the other workers can hold at most {HubFrame.MaxPayloadBytes} bytes in all its hub protocols; this one has {payload.Length}.");
        }

        await EnsureConnectedAsync(cancellationToken).ConfigureAwait(false);
        var frame = System.Buffers.ArrayPool<byte>.Shared.Rent(HubFrame.SizeFor(payload.Length));
        try
        {
            var written = HubFrame.Write(frame, target, payload.Span);
            if (_closed)
            {
                throw SupervisorGone();
            }

            Send(written);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(frame);
        }
    }

    public void Register(ClusterConnectionListener listener) => _listeners[listener.ListenerId] = listener;

    public void Unbind(ClusterConnectionListener listener)
    {
        if (!_listeners.TryRemove(listener.ListenerId, out _) || _closed)
        {
            return;
        }

        Span<byte> buffer = stackalloc byte[UnbindFrame.Size];
        TrySendQuietly(UnbindFrame.Write(buffer, listener.ListenerId));
    }

    public async Task ReportReadyAsync(WorkerFeatures features, CancellationToken cancellationToken)
    {
        await EnsureConnectedAsync(cancellationToken).ConfigureAwait(false);
        Span<byte> buffer = stackalloc byte[ReadyFrame.MaxSize];
        TrySendQuietly(ReadyFrame.Write(buffer, SupervisorReadsFeatures ? features : null));
        ClusterTransportLog.ReportedReady(_logger, WorkerId, Generation);
    }

    // An older supervisor takes any byte after Ready's type for a malformed frame.
    private static bool SupervisorReadsFeatures
        => int.TryParse(Environment.GetEnvironmentVariable(ClusterEnvironment.Protocol), System.Globalization.CultureInfo.InvariantCulture, out var revision) && revision >= 2;

    public void Acknowledge(ReadOnlySpan<long> sequences, bool accepted)
    {
        if (_closed || sequences.IsEmpty)
        {
            return;
        }

        Span<byte> buffer = stackalloc byte[AcksFrame.SizeFor(sequences.Length)];
        TrySendQuietly(AcksFrame.Write(buffer, sequences, accepted));
    }

    public void TrackConnection(ConnectionContext connection) => _drain.Track(connection);

    // Every second: the open connection count for `list`, and proof of life for hang detection. The
    // tick comes from a dedicated thread, but the frame is sent by an ordinary thread-pool work item queued
    // behind the app's own work: timers jump that queue, so only this shows a starved or deadlocked pool.
    private void StatusLoop()
    {
        while (!_closed && !_stopping.Token.WaitHandle.WaitOne(TimeSpan.FromSeconds(1)))
        {
            if (Interlocked.Exchange(ref _statusPending, 1) == 0)
            {
                ThreadPool.UnsafeQueueUserWorkItem(static self => self.SendStatus(), this, preferLocal: false);
            }
        }
    }

    private void SendStatus()
    {
        Volatile.Write(ref _statusPending, 0);
        Span<byte> buffer = stackalloc byte[StatusFrame.Size];
        TrySendQuietly(StatusFrame.Write(buffer, _drain.OpenConnections));
    }

    private async Task EnsureConnectedAsync(CancellationToken cancellationToken)
    {
        if (_socket is not null)
        {
            return;
        }

        await _connectLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_socket is not null)
            {
                return;
            }

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(_options.SupervisorTimeout);
            var socket = new ChannelSocket(ChannelSocket.CreateSocket());
            try
            {
                await socket.Socket.ConnectAsync(new UnixDomainSocketEndPoint(_channelPath), timeout.Token).ConfigureAwait(false);
                SendHello(socket);
                await ReceiveWelcomeAsync(socket, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException or InvalidFrameException && !cancellationToken.IsCancellationRequested)
            {
                socket.Dispose();
                throw new IOException($"Could not join the kestrel-cluster supervisor at {_channelPath}: {Describe(ex)}", ex);
            }

            _socket = socket;
            ClusterTransportLog.Connected(_logger, WorkerId, Generation);
            _receiveLoop = Task.Run(ReceiveLoopAsync);
            _statusThread = new Thread(StatusLoop) { IsBackground = true, Name = "kestrel-cluster status" };
            _statusThread.Start();
        }
        finally
        {
            _connectLock.Release();
        }
    }

    private void SendHello(ChannelSocket socket)
    {
        Span<byte> buffer = stackalloc byte[HelloFrame.MaxSize];
        socket.Send(HelloFrame.Write(buffer, Environment.ProcessId, _token));
    }

    private async Task ReceiveWelcomeAsync(ChannelSocket socket, CancellationToken cancellationToken)
    {
        var buffer = new byte[FrameLimits.MaxFrameSize];
        var fds = new int[FrameLimits.MaxFdsPerFrame];
        var (status, length, fdCount) = await socket.ReceiveOneAsync(buffer, fds, cancellationToken).ConfigureAwait(false);
        ChannelSocket.CloseAll(fds.AsSpan(0, fdCount));
        if (status != ReceiveStatus.Frame)
        {
            throw new InvalidFrameException("the supervisor refused this worker (wrong token or user)");
        }

        (WorkerId, Generation) = WelcomeFrame.Read(buffer.AsSpan(0, length));
    }

    private async Task ReceiveLoopAsync()
    {
        var socket = _socket!;
        var buffer = new byte[FrameLimits.MaxFrameSize];
        var fds = new int[FrameLimits.MaxFdsPerFrame];
        try
        {
            while (!_stopping.IsCancellationRequested)
            {
                await socket.WaitReadableAsync(_stopping.Token).ConfigureAwait(false);
                while (true)
                {
                    var status = socket.TryReceive(buffer, fds, out var length, out var fdCount);
                    if (status == ReceiveStatus.WouldBlock)
                    {
                        break;
                    }

                    if (status is not (ReceiveStatus.Frame or ReceiveStatus.FdsTruncated))
                    {
                        OnClosed(status == ReceiveStatus.Malformed ? "a malformed frame" : "end of stream");
                        return;
                    }

                    Handle(buffer.AsSpan(0, length), fds.AsSpan(0, fdCount), fdsTruncated: status == ReceiveStatus.FdsTruncated);
                }
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            OnClosed(ex.Message);
        }
        catch (InvalidFrameException ex)
        {
            OnClosed(ex.Message);
        }
    }

    private void Handle(ReadOnlySpan<byte> frame, ReadOnlySpan<int> fds, bool fdsTruncated)
    {
        // Never empty: ChannelSocket reports an empty message as the end of the stream.
        var type = FrameReader.TypeOf(frame);

        if (type is not (FrameType.Connections or FrameType.BindResult) && !fds.IsEmpty
            || type == FrameType.BindResult && fds.Length > 1)
        {
            ChannelSocket.CloseAll(fds);
            throw new InvalidFrameException($"{type} frame carried file descriptors");
        }

        if (fdsTruncated && type != FrameType.Connections)
        {
            // A shared listening socket that could not be installed: that bind cannot be served.
            ChannelSocket.CloseAll(fds);
            throw new InvalidFrameException($"{type} frame lost its file descriptor at this process's fd limit");
        }

        switch (type)
        {
            case FrameType.Connections:
                HandleConnections(frame, fds, fdsTruncated);
                break;
            case FrameType.BindResult:
                // --balance shared: the listening socket itself rides along.
                var listenFd = fds.IsEmpty ? -1 : fds[0];
                try
                {
                    var (requestId, listenerId, error, text) = BindResultFrame.Read(frame);
                    if (_pendingBinds.TryRemove(requestId, out var completion) && completion.TrySetResult(new BindResult(listenerId, error, text, listenFd)))
                    {
                        listenFd = -1;
                    }
                }
                finally
                {
                    if (listenFd >= 0)
                    {
                        ChannelSocket.CloseAll([listenFd]);
                    }
                }

                break;
            case FrameType.Message:
                var sender = MessageFrame.Read(frame, out var payload);
                try
                {
                    using var document = System.Text.Json.JsonDocument.Parse(payload.ToArray());
                    MessageReceived?.Invoke(new ClusterMessage(sender >= 0 ? sender : null, document.RootElement.Clone()));
                }
                catch (System.Text.Json.JsonException ex)
                {
                    ClusterTransportLog.BadMessage(_logger, ex.Message);
                }

                break;
            case FrameType.Hub:
                var hubSender = HubFrame.Read(frame, out var hubPayload);
                HubFrameReceived?.Invoke(hubSender, hubPayload);
                break;
            case FrameType.Stop:
                ClusterTransportLog.StopRequested(_logger);
                _drain.Begin();
                break;
            default:
                throw new InvalidFrameException($"unexpected {type} frame from the supervisor");
        }
    }

    private void HandleConnections(ReadOnlySpan<byte> frame, ReadOnlySpan<int> fds, bool fdsTruncated)
    {
        FrameReader reader;
        int count;
        try
        {
            reader = ConnectionsFrame.Read(frame, out count);
            if (fdsTruncated ? count < fds.Length : count != fds.Length)
            {
                throw new InvalidFrameException($"Connections frame names {count} connections but carries {fds.Length} fds");
            }
        }
        catch
        {
            ChannelSocket.CloseAll(fds);
            throw;
        }

        // Every connection of the frame is added before Kestrel's accept loop wakes, so it acknowledges them in one frame.
        ClusterConnectionListener? added = null;
        var refusedAtLimit = 0;
        Span<long> lost = stackalloc long[count - fds.Length];
        var i = 0;
        try
        {
            for (; i < count; i++)
            {
                var (listenerId, sequence) = ConnectionsFrame.Next(ref reader);
                if (i >= fds.Length)
                {
                    // Its fd was never installed here; the supervisor still holds the socket and passes it on.
                    lost[i - fds.Length] = sequence;
                    continue;
                }

                if (fds[i] >= _fdLimitReserveFrom)
                {
                    // Taking it would leave the app no fds for its own files and outgoing connections.
                    ChannelSocket.CloseAll(fds.Slice(i, 1));
                    Acknowledge([sequence], accepted: false);
                    refusedAtLimit++;
                    continue;
                }

                if (!_listeners.TryGetValue(listenerId, out var listener) || !listener.TryAdd(sequence, fds[i]))
                {
                    ChannelSocket.CloseAll(fds.Slice(i, 1));
                    Acknowledge([sequence], accepted: false);
                    continue;
                }

                if (added != listener)
                {
                    added?.Flush();
                    added = listener;
                }
            }
        }
        catch (InvalidFrameException)
        {
            // A frame cut short names fewer connections than it carried: close the fds not yet handed on.
            if (i < fds.Length)
            {
                ChannelSocket.CloseAll(fds[i..]);
            }

            throw;
        }

        added?.Flush();
        Acknowledge(lost, accepted: false);
        refusedAtLimit += lost.Length;
        if (refusedAtLimit > 0 != _atFdLimit)
        {
            // Once per burst: at the limit, every frame would log again.
            _atFdLimit = refusedAtLimit > 0;
            if (_atFdLimit)
            {
                ClusterTransportLog.FdLimitReached(_logger, refusedAtLimit, _fdLimit);
            }
        }
    }

    private void OnClosed(string reason)
    {
        if (_closed)
        {
            return;
        }

        _closed = true;
        foreach (var pending in _pendingBinds.Values)
        {
            pending.TrySetException(SupervisorGone());
        }

        if (!_stopping.IsCancellationRequested)
        {
            ClusterTransportLog.SupervisorGone(_logger, reason);
            // No supervisor, no new connections: stop gracefully rather than linger as an orphan.
            _lifetime.StopApplication();
        }
    }

    private void Send(ReadOnlySpan<byte> frame)
    {
        lock (_sendLock)
        {
            _socket!.Send(frame);
        }
    }

    private void TrySendQuietly(ReadOnlySpan<byte> frame)
    {
        try
        {
            Send(frame);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            OnClosed(ex.Message);
        }
    }

    private static IOException SupervisorGone() => new("The kestrel-cluster supervisor closed the channel.");

    private static string Describe(Exception ex) => ex switch
    {
        OperationCanceledException => "timed out",
        _ => ex.Message,
    };

    public async ValueTask DisposeAsync()
    {
        _stopping.Cancel();
        _socket?.Dispose();
        if (_receiveLoop is not null)
        {
            await _receiveLoop.ConfigureAwait(false);
        }

        _statusThread?.Join(TimeSpan.FromSeconds(2));

        _stopping.Dispose();
        _connectLock.Dispose();
    }
}

internal delegate void HubFrameHandler(int sender, ReadOnlySpan<byte> payload);

// ListenFd: the shared listening socket (--balance shared), else -1. Whoever receives it closes it.
internal readonly record struct BindResult(int ListenerId, SocketError Error, string Text, int ListenFd = -1)
{
    public bool Succeeded => ListenerId >= 0;
}
