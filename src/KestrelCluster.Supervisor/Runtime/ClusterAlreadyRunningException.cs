namespace KestrelCluster.Supervisor.Runtime;

// Another supervisor serves a cluster of this name: its channel socket answers, or its pid file names a live process.
internal sealed class ClusterAlreadyRunningException(string message) : Exception(message);
