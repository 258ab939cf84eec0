namespace KestrelCluster.Supervisor.Runtime;

// The runtime folder, or a socket in it, cannot be made private as it must be: another user owns it, or the
// supervisor's user may not give it to the --control-group.
internal sealed class RuntimeFolderException(string message) : Exception(message);
