namespace KestrelCluster.Transport;

// Registered with the transport, so that a second UseClusterTransport() (the app's line and the supervisor's
// startup hook) adds nothing twice. The startup hook looks this type up by name: keep its name and namespace.
internal sealed class ClusterTransportMarker;
