namespace KestrelCluster.Protocol;

internal sealed class InvalidFrameException(string message) : Exception(message);
