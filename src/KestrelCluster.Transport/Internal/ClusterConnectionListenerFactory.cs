using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using KestrelCluster.Protocol;

namespace KestrelCluster.Transport;

// Kestrel asks this factory to bind each endpoint; the supervisor binds it (once for all workers).
internal sealed class ClusterConnectionListenerFactory(
    SupervisorChannel channel,
    IOptions<SocketTransportOptions> socketOptions,
    ILoggerFactory loggerFactory) : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    private readonly ILogger _socketsLogger = loggerFactory.CreateLogger("Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets");
    private readonly ILogger _logger = loggerFactory.CreateLogger<ClusterConnectionListenerFactory>();

    // Inherited handles (ListenHandle) and named pipes stay with the transports that own them.
    public bool CanBind(EndPoint endpoint) => endpoint is IPEndPoint or UnixDomainSocketEndPoint;

    public async ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        var result = await channel.BindAsync(endpoint, cancellationToken).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            if (result.ListenFd >= 0)
            {
                ChannelSocket.CloseAll([result.ListenFd]);
            }

            if (result.Error == SocketError.AddressAlreadyInUse)
            {
                throw new AddressInUseException(result.Text);
            }

            throw new IOException($"The kestrel-cluster supervisor could not listen on {endpoint}: {result.Text}");
        }

        if (!EndpointText.TryParse(result.Text, out var bound))
        {
            if (result.ListenFd >= 0)
            {
                ChannelSocket.CloseAll([result.ListenFd]);
            }

            throw new IOException($"The kestrel-cluster supervisor answered an unreadable endpoint for {endpoint}.");
        }

        var listener = new ClusterConnectionListener(result.ListenerId, bound, channel, new SocketConnectionContextFactory(CreateFactoryOptions(), _socketsLogger));
        if (result.ListenFd >= 0)
        {
            return await BindSharedAsync(endpoint, bound, result.ListenFd, listener, cancellationToken).ConfigureAwait(false);
        }

        channel.Register(listener);
        ClusterTransportLog.Bound(_logger, endpoint, bound);
        return listener;
    }

    private async ValueTask<IConnectionListener> BindSharedAsync(EndPoint requested, EndPoint bound, int listenFd, ClusterConnectionListener passed, CancellationToken cancellationToken)
    {
        IConnectionListener inner;
        try
        {
            inner = await new SocketTransportFactory(socketOptions, loggerFactory)
                .BindAsync(new FileHandleEndPoint((ulong)listenFd, FileHandleType.Auto), cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            ChannelSocket.CloseAll([listenFd]);
            await passed.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        // The supervisor also passes connections: those still queued in a scaled-away worker's socket.
        channel.Register(passed);
        ClusterTransportLog.Bound(_logger, requested, bound);
        return new SharedSocketListener(inner, passed, bound, listenFd, channel);
    }

    // Honour the app's own socket transport settings (UseSockets(o => ...)) for passed connections too.
    private SocketConnectionFactoryOptions CreateFactoryOptions()
    {
        var source = socketOptions.Value;
        return new SocketConnectionFactoryOptions
        {
            IOQueueCount = source.IOQueueCount,
            WaitForDataBeforeAllocatingBuffer = source.WaitForDataBeforeAllocatingBuffer,
            MaxReadBufferSize = source.MaxReadBufferSize,
            MaxWriteBufferSize = source.MaxWriteBufferSize,
            UnsafePreferInlineScheduling = source.UnsafePreferInlineScheduling,
        };
    }
}
