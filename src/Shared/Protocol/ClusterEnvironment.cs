namespace KestrelCluster.Protocol;

// The worker contract's environment variables (DESIGN.md), named in one place.
internal static class ClusterEnvironment
{
    internal const string Channel = "KESTREL_CLUSTER_CHANNEL";
    internal const string Token = "KESTREL_CLUSTER_TOKEN";
    internal const string WorkerId = "KESTREL_CLUSTER_WORKER_ID";
    internal const string Generation = "KESTREL_CLUSTER_GENERATION";
}
