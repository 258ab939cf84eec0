namespace KestrelCluster.Supervisor.Control;

// A control command (list, reload, scale, stop, send, upgrade) found no single cluster to ask, could not reach its
// control socket, or got no answer it could read.
internal sealed class ControlRequestException(string message) : Exception(message);
