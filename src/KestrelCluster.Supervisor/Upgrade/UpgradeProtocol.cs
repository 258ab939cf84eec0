using System.Text;
using KestrelCluster.Protocol;

namespace KestrelCluster.Supervisor.Upgrade;

// Between a running supervisor and the one an upgrade starts, over a SOCK_SEQPACKET socket in the cluster's
// runtime folder: one frame a message, a type byte then UTF-8 text; listening sockets and connections ride along
// as SCM_RIGHTS fds. Both ends are the same user's kestrel-cluster, possibly of different versions: keep the
// values as they are and add new ones at the end.
internal enum UpgradeFrame : byte
{
    // new → old: the token from KESTREL_CLUSTER_UPGRADE_TOKEN
    Hello = 1,
    // old → new: the endpoint as the app asked for it ("127.0.0.1:0"); one listening socket rides along
    Listener = 2,
    // old → new: every listener sent; text: the generation the new supervisor starts with
    ListenersDone = 3,
    // new → old: all its workers are ready
    Ready = 4,
    // new → old: it cannot serve; text: why
    Failed = 5,
    // old → new: accept now; take the control socket and the pid file
    TakeOver = 6,
    // new → old: done; the old one may stop accepting and drain
    TookOver = 7,
    // old → new: connections it accepted but no worker of its took; text: their endpoint as requested; fds ride along
    Connections = 8,
}

internal static class UpgradeEnvironment
{
    // Set by the running supervisor for the one it starts, and removed by that one at once (its workers and its
    // own upgrades must not see them).
    public const string Socket = "KESTREL_CLUSTER_UPGRADE_SOCKET";
    public const string Token = "KESTREL_CLUSTER_UPGRADE_TOKEN";
    public const string Name = "KESTREL_CLUSTER_UPGRADE_NAME";

    public static readonly string[] All = [Socket, Token, Name];
}

internal static class UpgradeFrames
{
    public static byte[] Encode(UpgradeFrame type, string text = "")
    {
        var frame = new byte[1 + Encoding.UTF8.GetByteCount(text)];
        var writer = new FrameWriter(frame);
        writer.WriteByte((byte)type);
        writer.WriteRemainingString(text);
        return frame;
    }

    public static (UpgradeFrame Type, string Text) Decode(ReadOnlySpan<byte> frame)
    {
        if (frame.IsEmpty)
        {
            throw new InvalidFrameException("empty upgrade frame");
        }

        var reader = FrameReader.ForPayload(frame, "upgrade frame");
        var type = (UpgradeFrame)reader.ReadByte();
        // Not strict UTF-8: both ends are kestrel-cluster, and callers hold the frame's fds while they decode it.
        return (type, Encoding.UTF8.GetString(reader.ReadRemaining()));
    }
}
