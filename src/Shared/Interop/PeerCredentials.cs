using System.Buffers.Binary;
using System.Net.Sockets;

namespace KestrelCluster.Interop;

// SO_PEERCRED of a connected Unix socket: who is on the other end, as the kernel saw it at connect.
internal readonly record struct PeerCredentials(int ProcessId, uint UserId, uint GroupId)
{
    public static PeerCredentials Of(Socket socket)
    {
        Span<byte> buffer = stackalloc byte[12];
        var length = socket.GetRawSocketOption(Libc.SOL_SOCKET, Libc.SO_PEERCRED, buffer);
        if (length != 12)
        {
            throw new SocketException((int)SocketError.ProtocolOption);
        }

        return new PeerCredentials(
            BinaryPrimitives.ReadInt32LittleEndian(buffer),
            BinaryPrimitives.ReadUInt32LittleEndian(buffer[4..]),
            BinaryPrimitives.ReadUInt32LittleEndian(buffer[8..]));
    }

    /// <summary>SO_PEERGROUPS (Linux 4.13+): the peer's supplementary groups at connect, which SO_PEERCRED leaves out.</summary>
    public static bool IsInGroup(Socket socket, uint groupId)
    {
        var buffer = new byte[Libc.NGROUPS_MAX * sizeof(uint)];
        var length = socket.GetRawSocketOption(Libc.SOL_SOCKET, Libc.SO_PEERGROUPS, buffer);
        for (var offset = 0; offset + sizeof(uint) <= length; offset += sizeof(uint))
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(offset)) == groupId)
            {
                return true;
            }
        }

        return false;
    }
}
