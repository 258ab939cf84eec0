using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using System.Threading.Channels;
using KestrelCluster.Protocol;
using Microsoft.Extensions.Hosting;

namespace KestrelCluster.Transport;

// IClusterWorker for a process under a supervisor: messages travel as Message frames on the channel.
internal sealed class SupervisedWorker(SupervisorChannel channel, IHostApplicationLifetime lifetime) : IClusterWorker
{
    private readonly Lock _subscribersLock = new();
    private readonly List<Channel<ClusterMessage>> _subscribers = [];

    public int Id => int.TryParse(Environment.GetEnvironmentVariable(ClusterEnvironment.WorkerId), out var id) ? id : channel.WorkerId;

    public int Generation => int.TryParse(Environment.GetEnvironmentVariable(ClusterEnvironment.Generation), out var generation) ? generation : channel.Generation;

    public bool IsClustered => true;

    public ValueTask SendToSupervisorAsync<T>(T message, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken = default)
        => channel.SendMessageAsync(MessageTargets.Supervisor, JsonSerializer.SerializeToUtf8Bytes(message, typeInfo), cancellationToken);

    public ValueTask BroadcastAsync<T>(T message, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken = default)
        => channel.SendMessageAsync(MessageTargets.OtherWorkers, JsonSerializer.SerializeToUtf8Bytes(message, typeInfo), cancellationToken);

    public async IAsyncEnumerable<ClusterMessage> ReadMessagesAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var inbox = Channel.CreateBounded<ClusterMessage>(new BoundedChannelOptions(1024) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });
        lock (_subscribersLock)
        {
            _subscribers.Add(inbox);
        }

        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, lifetime.ApplicationStopping);
        try
        {
            while (true)
            {
                ClusterMessage message;
                try
                {
                    message = await inbox.Reader.ReadAsync(stopping.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    yield break;
                }

                yield return message;
            }
        }
        finally
        {
            lock (_subscribersLock)
            {
                _subscribers.Remove(inbox);
            }
        }
    }

    // Called by the channel's receive loop for each Message frame.
    public void Deliver(ClusterMessage message)
    {
        lock (_subscribersLock)
        {
            foreach (var subscriber in _subscribers)
            {
                subscriber.Writer.TryWrite(message);
            }
        }
    }
}
