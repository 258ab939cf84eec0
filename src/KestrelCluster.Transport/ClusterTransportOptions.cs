namespace KestrelCluster;

/// <summary>
/// Options for the cluster transport. They only matter when the app runs as a worker under
/// <c>kestrel-cluster</c>; run alone, the app uses Kestrel's default transport.
/// </summary>
public sealed class ClusterTransportOptions
{
    /// <summary>
    /// How long the worker waits for the supervisor to answer when it connects and binds an endpoint.
    /// Defaults to 30 seconds.
    /// </summary>
    public TimeSpan SupervisorTimeout { get; set; } = TimeSpan.FromSeconds(30);
}
