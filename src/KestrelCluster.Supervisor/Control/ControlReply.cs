using System.Buffers;
using KestrelCluster.Protocol;

namespace KestrelCluster.Supervisor.Control;

// An answer of any size on the control socket. A SOCK_SEQPACKET frame holds at most FrameLimits.MaxFrameSize,
// so a longer answer goes out as several frames, each but the last starting with MoreFollows: a byte serialized
// JSON never contains (control characters are escaped), so an answer that fits one frame is plain JSON, as before.
internal static class ControlReply
{
    public const byte MoreFollows = 0x01;

    /// <summary>What a client reassembles at most: a list of the largest cluster is well under 1 MiB.</summary>
    public const int MaxBytes = 16 << 20;

    private const int ChunkBytes = FrameLimits.MaxFrameSize - 1;

    /// <summary>Sends the answer; each frame waits a bounded time for room (SocketException past that).</summary>
    public static void Send(ChannelSocket socket, ReadOnlySpan<byte> reply)
    {
        if (reply.Length > FrameLimits.MaxFrameSize)
        {
            var frame = new byte[FrameLimits.MaxFrameSize];
            frame[0] = MoreFollows;
            while (reply.Length > FrameLimits.MaxFrameSize)
            {
                reply[..ChunkBytes].CopyTo(frame.AsSpan(1));
                socket.Send(frame);
                reply = reply[ChunkBytes..];
            }
        }

        socket.Send(reply);
    }

    /// <summary>
    /// Reassembles one answer; null when the peer closed before sending any. Throws InvalidFrameException for an
    /// answer cut short, a frame too large, or more than <paramref name="maxBytes"/> in all.
    /// </summary>
    public static async Task<byte[]?> ReceiveAsync(ChannelSocket socket, CancellationToken cancellationToken, int maxBytes = MaxBytes)
    {
        var buffer = new byte[FrameLimits.MaxFrameSize];
        var fds = new int[FrameLimits.MaxFdsPerFrame];
        var reply = new ArrayBufferWriter<byte>();
        while (true)
        {
            var (status, length, fdCount) = await socket.ReceiveOneAsync(buffer, fds, cancellationToken).ConfigureAwait(false);
            ChannelSocket.CloseAll(fds.AsSpan(0, fdCount));
            switch (status)
            {
                case ReceiveStatus.Closed when reply.WrittenCount == 0:
                    return null;
                case ReceiveStatus.Closed:
                    throw new InvalidFrameException($"the connection closed after {reply.WrittenCount} bytes, before the answer was complete");
                case not ReceiveStatus.Frame:
                    throw new InvalidFrameException($"a frame was larger than {FrameLimits.MaxFrameSize} bytes");
            }

            var more = buffer[0] == MoreFollows;
            var chunk = buffer.AsSpan(more ? 1 : 0, more ? length - 1 : length);
            if (reply.WrittenCount + chunk.Length > maxBytes)
            {
                throw new InvalidFrameException($"the answer is larger than {maxBytes >> 20} MiB");
            }

            reply.Write(chunk);
            if (!more)
            {
                return reply.WrittenSpan.ToArray();
            }
        }
    }
}
