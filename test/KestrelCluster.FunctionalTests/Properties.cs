using System.Runtime.Versioning;

// Functional tests start real worker processes; on a 2-core machine they run one class at a time.
[assembly: Xunit.CollectionBehavior(DisableTestParallelization = true)]
[assembly: SupportedOSPlatform("linux")]
