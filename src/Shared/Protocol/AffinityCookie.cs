namespace KestrelCluster.Protocol;

// Request-aware affinity (README "SignalR and Blazor Server"): a worker that answers a SignalR negotiate sets this
// cookie to its slot id; the supervisor reads it in the first request of each new connection and passes the
// connection to that slot, so the transport request (and a Blazor reconnect) reaches the worker holding the state.
internal static class AffinityCookie
{
    internal const string Name = "kc-worker";

    // Name and '=' as the supervisor looks for them in a Cookie header.
    internal static ReadOnlySpan<byte> NameEquals => "kc-worker="u8;
}
