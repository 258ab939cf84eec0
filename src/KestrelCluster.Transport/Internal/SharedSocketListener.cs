using System.Net;
using KestrelCluster.Protocol;
using Microsoft.AspNetCore.Connections;

namespace KestrelCluster.Transport;

// --balance shared: the supervisor's listening socket, accepted on by Kestrel's own socket transport in every
// worker (the kernel spreads connections). Kestrel wraps a FileHandleEndPoint without owning the fd, so the fd
// is closed here, after Kestrel has let go of it; the address is the public one, not the handle.
internal sealed class SharedSocketListener(IConnectionListener inner, EndPoint endPoint, int listenFd, SupervisorChannel channel) : IConnectionListener
{
    private int _closed;

    public EndPoint EndPoint { get; } = endPoint;

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        var connection = await inner.AcceptAsync(cancellationToken).ConfigureAwait(false);
        if (connection is not null)
        {
            channel.TrackConnection(connection);
        }

        return connection;
    }

    public async ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        await inner.UnbindAsync(cancellationToken).ConfigureAwait(false);
        CloseFd();
    }

    public async ValueTask DisposeAsync()
    {
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
