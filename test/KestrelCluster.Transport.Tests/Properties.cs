using System.Runtime.Versioning;

// The channel tests point the process-wide KESTREL_CLUSTER_CHANNEL variable at their own supervisor end while they
// create a channel; RegistrationTests must not see it (it would register the transport as in a worker).
[assembly: Xunit.CollectionBehavior(DisableTestParallelization = true)]
[assembly: SupportedOSPlatform("linux")]
