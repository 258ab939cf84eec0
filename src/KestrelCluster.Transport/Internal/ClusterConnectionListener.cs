using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using KestrelCluster.Protocol;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;

namespace KestrelCluster.Transport;

// One endpoint of the app, bound by the supervisor. Connections the supervisor passes wait here until
// Kestrel accepts them; only then are they acknowledged. Whatever is still queued when Kestrel unbinds is
// refused, so the supervisor hands it to another worker instead of Kestrel closing it unanswered.
internal sealed class ClusterConnectionListener : IConnectionListener
{
    private readonly SupervisorChannel _channel;
    private readonly SocketConnectionContextFactory _contextFactory;
    private readonly Channel<PassedConnection> _queue = Channel.CreateUnbounded<PassedConnection>(new UnboundedChannelOptions { SingleWriter = true });
    private readonly bool _isTcp;
    private volatile bool _unbound;

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

    public bool TryEnqueue(long sequence, int fd) => !_unbound && _queue.Writer.TryWrite(new PassedConnection(sequence, fd));

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            while (await _queue.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                while (_queue.Reader.TryRead(out var passed))
                {
                    if (_unbound)
                    {
                        Refuse(passed);
                        continue;
                    }

                    // Acknowledge before Kestrel reads a byte: from here on the connection is this worker's.
                    _channel.Acknowledge(passed.Sequence, accepted: true);
                    var socket = new Socket(new SafeSocketHandle(passed.Fd, ownsHandle: true));
                    if (_isTcp)
                    {
                        TrySetNoDelay(socket);
                    }

                    var connection = _contextFactory.Create(socket);
                    _channel.TrackConnection(connection);
                    return connection;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }

        return null;
    }

    public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        if (_unbound)
        {
            return ValueTask.CompletedTask;
        }

        _unbound = true;
        _channel.Unbind(this);
        _queue.Writer.TryComplete();
        while (_queue.Reader.TryRead(out var passed))
        {
            Refuse(passed);
        }

        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await UnbindAsync().ConfigureAwait(false);
        _contextFactory.Dispose();
    }

    private void Refuse(PassedConnection passed)
    {
        ChannelSocket.CloseAll([passed.Fd]);
        _channel.Acknowledge(passed.Sequence, accepted: false);
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

    private readonly record struct PassedConnection(long Sequence, int Fd);
}
