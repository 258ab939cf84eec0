using System.Collections.Concurrent;
using System.Threading.Channels;
using KestrelCluster.Protocol;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Transport.Backplane;

internal interface IHubFrameReceiver
{
    Task ReceiveAsync(int sender, byte[] payload);
}

// One per worker, shared by every hub's lifetime manager: sends Hub frames through the supervisor, and hands the
// ones that arrive to the hub they name, one at a time in arrival order (each sender's frames come in the order it
// sent them), off the channel's receive loop so a slow client never holds up passed connections.
internal sealed class HubBackplane : IDisposable
{
    private const int InboxCapacity = 8192;
    private readonly SupervisorChannel _channel;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, IHubFrameReceiver> _hubs = new();
    private readonly Channel<(int Sender, byte[] Payload)> _inbox = Channel.CreateBounded<(int, byte[])>(new BoundedChannelOptions(InboxCapacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
    private long _dropped;

    public HubBackplane(SupervisorChannel channel, ConnectionDrain drain, IHostApplicationLifetime lifetime, ILogger<HubBackplane> logger)
    {
        _channel = channel;
        _logger = logger;
        DrainStarted = drain.Started;
        channel.HubFrameReceived = OnFrame;
        _ = Task.Run(() => DispatchAsync(lifetime.ApplicationStopped));
    }

    public CancellationToken DrainStarted { get; }

    public void Register(string hub, IHubFrameReceiver receiver) => _hubs[hub] = receiver;

    public ValueTask SendAsync(int target, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
        => _channel.SendHubAsync(target, payload, cancellationToken);

    private void OnFrame(int sender, ReadOnlySpan<byte> payload)
    {
        if (!_inbox.Writer.TryWrite((sender, payload.ToArray())))
        {
            // Thousands of frames behind: the app cannot keep up; dropping beats stalling passed connections.
            var dropped = Interlocked.Increment(ref _dropped);
            if (dropped == 1 || dropped % 1000 == 0)
            {
                ClusterTransportLog.HubFramesDropped(_logger, dropped, InboxCapacity);
            }
        }
    }

    private async Task DispatchAsync(CancellationToken stopped)
    {
        try
        {
            await foreach (var (sender, payload) in _inbox.Reader.ReadAllAsync(stopped).ConfigureAwait(false))
            {
                string hub;
                try
                {
                    hub = new HubPayloadReader(payload).ReadString();
                }
                catch (InvalidFrameException ex)
                {
                    ClusterTransportLog.BadHubFrame(_logger, sender, ex.Message);
                    continue;
                }

                if (!_hubs.TryGetValue(hub, out var receiver))
                {
                    // No connection has reached that hub in this worker yet: it has no client to write to.
                    continue;
                }

                try
                {
                    await receiver.ReceiveAsync(sender, payload).ConfigureAwait(false);
                }
                catch (InvalidFrameException ex)
                {
                    ClusterTransportLog.BadHubFrame(_logger, sender, ex.Message);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    ClusterTransportLog.HubDeliveryFailed(_logger, hub, ex);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    public void Dispose() => _inbox.Writer.TryComplete();
}
