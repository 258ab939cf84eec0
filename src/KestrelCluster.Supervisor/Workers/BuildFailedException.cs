namespace KestrelCluster.Supervisor.Workers;

// The first publish of a --project app failed: no generation to start (a reload's failed publish only refuses the reload).
internal sealed class BuildFailedException(string message) : Exception(message);
