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

    /// <summary>
    /// When the worker is asked to stop (a reload, a scale-down, a stop, or SIGTERM), how long it keeps serving
    /// while every HTTP/1.x response carries <c>Connection: close</c>, so keep-alive clients move to other
    /// workers between requests instead of having idle connections cut. The window ends earlier once no
    /// connection is left. Zero stops at once. Defaults to 5 seconds; at most 20, to stay well within the
    /// supervisor's <c>--kill-timeout</c> (30 s by default).
    /// </summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(5);
}
