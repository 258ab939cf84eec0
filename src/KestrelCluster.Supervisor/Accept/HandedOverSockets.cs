namespace KestrelCluster.Supervisor.Accept;

// .NET unlinks a Unix socket's path when the socket that bound it is disposed (or finalized). After an upgrade
// the paths of the old supervisor's control socket and unix: listeners belong to the new supervisor, so those
// sockets are never disposed: held here, they close with the process.
internal static class HandedOverSockets
{
    private static readonly List<object> s_kept = [];

    public static void Keep(object socketOwner)
    {
        lock (s_kept)
        {
            s_kept.Add(socketOwner);
        }
    }
}
