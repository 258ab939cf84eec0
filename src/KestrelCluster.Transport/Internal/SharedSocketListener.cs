using System.Net;
using KestrelCluster.Protocol;
using Microsoft.AspNetCore.Connections;

namespace KestrelCluster.Transport;

// --balance shared: the worker's slot's listening socket, accepted on by Kestrel's own socket transport (the kernel
// spreads connections over the slots' sockets), plus the connections the supervisor passes over the channel (what
// was still queued in a scaled-away slot's socket). Kestrel wraps a FileHandleEndPoint without owning the fd, so the
// fd is closed here, after Kestrel has let go of it; the address is the public one, not the handle.
internal sealed class SharedSocketListener(IConnectionListener inner, ClusterConnectionListener passed, EndPoint endPoint, int listenFd, SupervisorChannel channel) : IConnectionListener
{
    private int _closed;
    // Kestrel asks for one connection at a time; each source keeps at most one accept outstanding between calls.
    private Task<ConnectionContext?>? _socketAccept;
    private Task<ConnectionContext?>? _passedAccept;
    private bool _socketDone;
    private bool _passedDone;

    public EndPoint EndPoint { get; } = endPoint;

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            if (!_socketDone)
            {
                _socketAccept ??= inner.AcceptAsync(CancellationToken.None).AsTask();
            }

            if (!_passedDone)
            {
                _passedAccept ??= passed.AcceptAsync(CancellationToken.None).AsTask();
            }

            if (_socketDone && _passedDone)
            {
                return null;
            }

            var done = _socketDone ? _passedAccept! : _passedDone ? _socketAccept! : await Task.WhenAny(_socketAccept!, _passedAccept!).WaitAsync(cancellationToken).ConfigureAwait(false);
            var connection = await done.WaitAsync(cancellationToken).ConfigureAwait(false);
            if (done == _socketAccept)
            {
                _socketAccept = null;
                if (connection is null)
                {
                    _socketDone = true;
                    continue;
                }

                channel.TrackConnection(connection);
                return connection;
            }

            // Passed connections are tracked (and acknowledged) by their own listener.
            _passedAccept = null;
            if (connection is null)
            {
                _passedDone = true;
                continue;
            }

            return connection;
        }
    }

    public async ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        await passed.UnbindAsync(cancellationToken).ConfigureAwait(false);
        await inner.UnbindAsync(cancellationToken).ConfigureAwait(false);
        CloseFd();
    }

    public async ValueTask DisposeAsync()
    {
        await passed.DisposeAsync().ConfigureAwait(false);
        await inner.DisposeAsync().ConfigureAwait(false);
        CloseFd();
    }

    private void CloseFd()
    {
        if (Interlocked.Exchange(ref _closed, 1) == 0)
        {
            ChannelSocket.CloseAll([listenFd]);
        }
    }
}
