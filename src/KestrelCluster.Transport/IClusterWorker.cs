using System.Diagnostics.CodeAnalysis;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace KestrelCluster;

/// <summary>
/// This process's place in a kestrel-cluster, and messages between its workers (in DI after
/// <c>UseClusterTransport()</c>). Run alone, <see cref="IsClustered"/> is false, sending does nothing and no
/// message arrives, so code that uses it works the same with one process.
/// </summary>
public interface IClusterWorker
{
    /// <summary>The worker's slot, 0..N-1, stable across restarts of that slot; 0 when not clustered.</summary>
    int Id { get; }

    /// <summary>1 at start, +1 with each rolling reload; 0 when not clustered.</summary>
    int Generation { get; }

    /// <summary>Whether a kestrel-cluster supervisor started this process.</summary>
    bool IsClustered { get; }

    /// <summary>Sends a JSON message to the supervisor, which logs it.</summary>
    /// <param name="message">The message.</param>
    /// <param name="typeInfo">How to write it: from a source-generated <c>JsonSerializerContext</c>, so trimmed and NativeAOT apps can send it.</param>
    /// <param name="cancellationToken">Ends the wait for room on the channel.</param>
    ValueTask SendToSupervisorAsync<T>(T message, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken = default);

    /// <summary>Sends a JSON message to every other worker of the cluster (not to this one).</summary>
    /// <param name="message">The message.</param>
    /// <param name="typeInfo">How to write it: from a source-generated <c>JsonSerializerContext</c>, so trimmed and NativeAOT apps can send it.</param>
    /// <param name="cancellationToken">Ends the wait for room on the channel.</param>
    ValueTask BroadcastAsync<T>(T message, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken = default);

    /// <summary>Sends a JSON message to the supervisor, which logs it, written by reflection (<c>JsonSerializerOptions.Web</c>).</summary>
    [RequiresUnreferencedCode(ReflectionJson.Message)]
    [RequiresDynamicCode(ReflectionJson.Message)]
    ValueTask SendToSupervisorAsync<T>(T message, CancellationToken cancellationToken = default)
        => SendToSupervisorAsync(message, ReflectionJson.TypeInfo<T>(), cancellationToken);

    /// <summary>Sends a JSON message to every other worker of the cluster (not to this one), written by reflection (<c>JsonSerializerOptions.Web</c>).</summary>
    [RequiresUnreferencedCode(ReflectionJson.Message)]
    [RequiresDynamicCode(ReflectionJson.Message)]
    ValueTask BroadcastAsync<T>(T message, CancellationToken cancellationToken = default)
        => BroadcastAsync(message, ReflectionJson.TypeInfo<T>(), cancellationToken);

    /// <summary>
    /// Messages from other workers and from <c>kestrel-cluster send</c>, from the moment of the call, until
    /// the token is cancelled or the app stops. Each call gets every message; a reader that falls more
    /// than 1024 messages behind loses the oldest.
    /// </summary>
    IAsyncEnumerable<ClusterMessage> ReadMessagesAsync(CancellationToken cancellationToken = default);
}

/// <summary>A message received by a worker.</summary>
/// <param name="FromWorkerId">The sending worker's id, or null when it came from the supervisor (<c>kestrel-cluster send</c>).</param>
/// <param name="Payload">The message, as JSON.</param>
public sealed record ClusterMessage(int? FromWorkerId, JsonElement Payload)
{
    /// <summary>The payload deserialized as <typeparamref name="T"/> by reflection (default: <c>JsonSerializerOptions.Web</c>).</summary>
    [RequiresUnreferencedCode(ReflectionJson.Message)]
    [RequiresDynamicCode(ReflectionJson.Message)]
    public T? As<T>(JsonSerializerOptions? options = null) => Payload.Deserialize<T>(options ?? JsonSerializerOptions.Web);

    /// <summary>The payload deserialized with <paramref name="typeInfo"/>, from a source-generated <c>JsonSerializerContext</c> (trimming- and NativeAOT-safe).</summary>
    public T? As<T>(JsonTypeInfo<T> typeInfo) => Payload.Deserialize(typeInfo);
}

// The reflection-based overloads: warnings land where an app calls them, not inside the library.
internal static class ReflectionJson
{
    public const string Message = "Reflection-based JSON may not work in trimmed or NativeAOT apps: pass a JsonTypeInfo<T> from a source-generated JsonSerializerContext.";

    [RequiresUnreferencedCode(Message)]
    [RequiresDynamicCode(Message)]
    public static JsonTypeInfo<T> TypeInfo<T>() => (JsonTypeInfo<T>)JsonSerializerOptions.Web.GetTypeInfo(typeof(T));
}
