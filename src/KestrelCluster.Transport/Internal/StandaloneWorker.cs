using System.Runtime.CompilerServices;
using System.Text.Json.Serialization.Metadata;

namespace KestrelCluster.Transport;

// IClusterWorker for a process run alone: a cluster of one.
internal sealed class StandaloneWorker : IClusterWorker
{
    public int Id => 0;

    public int Generation => 0;

    public bool IsClustered => false;

    public ValueTask SendToSupervisorAsync<T>(T message, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    public ValueTask BroadcastAsync<T>(T message, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    public async IAsyncEnumerable<ClusterMessage> ReadMessagesAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        yield break;
    }
}
