namespace KestrelCluster.Protocol;

// The worker contract's environment variables (README "Worker environment variables"), named in one place.
internal static class ClusterEnvironment
{
    internal const string Channel = "KESTREL_CLUSTER_CHANNEL";
    internal const string Token = "KESTREL_CLUSTER_TOKEN";
    internal const string WorkerId = "KESTREL_CLUSTER_WORKER_ID";
    internal const string Generation = "KESTREL_CLUSTER_GENERATION";
    // The channel protocol revision the supervisor reads: a worker sends newer fields only to a supervisor that reads them.
    internal const string Protocol = "KESTREL_CLUSTER_PROTOCOL";
    internal const int ProtocolRevision = 2;
    // A 0700 folder of the supervisor's runtime folder: the workers' shared data protection key ring.
    internal const string DataProtectionKeys = "KESTREL_CLUSTER_DATA_PROTECTION_KEYS";
}
