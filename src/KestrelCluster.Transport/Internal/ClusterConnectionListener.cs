using System.Net;
using System.Net.Sockets;
using System.Threading.Tasks.Sources;
using KestrelCluster.Protocol;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;

namespace KestrelCluster.Transport;

// One endpoint of the app, bound by the supervisor. Connections the supervisor passes wait here until
// Kestrel accepts them; only then are they acknowledged. Whatever is still waiting when Kestrel unbinds is
// refused, so the supervisor hands it to another worker instead of Kestrel closing it unanswered.
//
// The channel's receive loop adds a whole frame's connections, then wakes Kestrel's accept loop inline (no
// thread-pool hop). The first AcceptAsync acknowledges every connection waiting at that moment in one Acks
// frame; the next ones hand those out without another send.
internal sealed class ClusterConnectionListener : IConnectionListener, IValueTaskSource<bool>
{
    // Bounded by the supervisor's window anyway; this only keeps one Acks frame small.
    private const int MaxAcksAtOnce = 64;

    private readonly SupervisorChannel _channel;
    private readonly SocketConnectionContextFactory _contextFactory;
    private readonly bool _isTcp;
    private readonly Lock _gate = new();
    private readonly Queue<PassedConnection> _passed = new();
    private readonly Queue<int> _acknowledged = new();
    private ManualResetValueTaskSourceCore<bool> _waiter;
    private bool _acceptWaiting;
    private bool _unbound;

    public ClusterConnectionListener(int listenerId, EndPoint endPoint, SupervisorChannel channel, SocketConnectionContextFactory contextFactory)
    {
        ListenerId = listenerId;
        EndPoint = endPoint;
        _channel = channel;
        _contextFactory = contextFactory;
        _isTcp = endPoint is IPEndPoint;
    }

    public int ListenerId { get; }

    public EndPoint EndPoint { get; }

    /// <summary>Takes a passed connection; false once Kestrel unbound (the caller refuses it). Call <see cref="Flush"/> after a frame's worth.</summary>
    public bool TryAdd(long sequence, int fd)
    {
        lock (_gate)
        {
            if (_unbound)
            {
                return false;
            }

            _passed.Enqueue(new PassedConnection(sequence, fd));
            return true;
        }
    }

    /// <summary>Wakes Kestrel's accept loop, which then runs on the caller's thread until it waits again.</summary>
    public void Flush() => Wake(canceled: false);

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        using var registration = cancellationToken.CanBeCanceled
            ? cancellationToken.UnsafeRegister(static state => ((ClusterConnectionListener)state!).Wake(canceled: true), this)
            : default;
        while (true)
        {
            if (TryTake(out var fd))
            {
                return Create(fd);
            }

            if (Volatile.Read(ref _unbound) || cancellationToken.IsCancellationRequested)
            {
                return null;
            }

            if (!await new ValueTask<bool>(this, _waiter.Version).ConfigureAwait(false))
            {
                return null;
            }
        }
    }

    // The next acknowledged connection. With none left, acknowledges everything passed so far in one frame
    // first: from then on those connections are this worker's. With nothing at all, arms the waiter.
    private bool TryTake(out int fd)
    {
        Span<long> sequences = stackalloc long[MaxAcksAtOnce];
        var count = 0;
        lock (_gate)
        {
            if (_acknowledged.TryDequeue(out fd))
            {
                return true;
            }

            while (!_unbound && count < sequences.Length && _passed.TryDequeue(out var passed))
            {
                sequences[count++] = passed.Sequence;
                _acknowledged.Enqueue(passed.Fd);
            }

            if (count == 0)
            {
                if (!_unbound)
                {
                    _waiter.Reset();
                    _acceptWaiting = true;
                }

                return false;
            }
        }

        // Before Kestrel reads a byte of any of them (it reads only after AcceptAsync returns).
        _channel.Acknowledge(sequences[..count], accepted: true);
        lock (_gate)
        {
            return _acknowledged.TryDequeue(out fd);
        }
    }

    private ConnectionContext Create(int fd)
    {
        var socket = new Socket(new SafeSocketHandle(fd, ownsHandle: true));
        if (_isTcp)
        {
            TrySetNoDelay(socket);
        }

        var connection = _contextFactory.Create(socket);
        _channel.TrackConnection(connection);
        return connection;
    }

    private void Wake(bool canceled)
    {
        lock (_gate)
        {
            if (!_acceptWaiting)
            {
                return;
            }

            _acceptWaiting = false;
        }

        // Outside the lock: the accept loop's continuation runs right here.
        _waiter.SetResult(!canceled);
    }

    public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        List<PassedConnection> refused;
        lock (_gate)
        {
            if (_unbound)
            {
                return ValueTask.CompletedTask;
            }

            _unbound = true;
            refused = [.. _passed];
            _passed.Clear();
        }

        _channel.Unbind(this);
        foreach (var passed in refused)
        {
            ChannelSocket.CloseAll([passed.Fd]);
            _channel.Acknowledge([passed.Sequence], accepted: false);
        }

        // Connections acknowledged already are still handed to Kestrel; then AcceptAsync returns null.
        Wake(canceled: false);
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await UnbindAsync().ConfigureAwait(false);
        lock (_gate)
        {
            // Acknowledged but never taken by Kestrel (it stopped accepting first): nobody will serve them.
            while (_acknowledged.TryDequeue(out var fd))
            {
                ChannelSocket.CloseAll([fd]);
            }
        }

        _contextFactory.Dispose();
    }

    private static void TrySetNoDelay(Socket socket)
    {
        try
        {
            // Kestrel's own listener sets it; SocketConnectionContextFactory does not.
            socket.NoDelay = true;
        }
        catch (SocketException)
        {
            // The client may already be gone; Kestrel will see that on its first read.
        }
    }

    bool IValueTaskSource<bool>.GetResult(short token) => _waiter.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<bool>.GetStatus(short token) => _waiter.GetStatus(token);

    void IValueTaskSource<bool>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        => _waiter.OnCompleted(continuation, state, token, flags);

    private readonly record struct PassedConnection(long Sequence, int Fd);
}
