namespace KestrelCluster.Protocol;

// Traffic between workers through the supervisor, both directions: a peer (i32) then a payload (the rest).
// worker → supervisor: the target; supervisor → worker: the sender.

internal static class MessageFrame
{
    public const int HeaderSize = 1 + sizeof(int);

    // The JSON a message may hold; the bound predates this codec and keeps room to spare.
    public const int MaxJsonBytes = FrameLimits.MaxFrameSize - 16;

    public static int SizeFor(int jsonLength) => HeaderSize + jsonLength;

    // target or sender (i32: MessageTargets, or a worker id), JSON (UTF-8, rest of the frame)
    public static ReadOnlySpan<byte> Write(Span<byte> buffer, int peer, ReadOnlySpan<byte> json)
    {
        var writer = new FrameWriter(buffer, FrameType.Message);
        writer.WriteInt32(peer);
        writer.WriteRemaining(json);
        return writer.Written;
    }

    public static int Read(ReadOnlySpan<byte> frame, out ReadOnlySpan<byte> json)
    {
        var reader = new FrameReader(frame, FrameType.Message);
        var peer = reader.ReadInt32();
        json = reader.ReadRemaining();
        return peer;
    }
}

// SignalR backplane traffic, relayed as is and never parsed by the supervisor (its payload: HubPayload.cs).
internal static class HubFrame
{
    public const int HeaderSize = 1 + sizeof(int);

    public const int MaxPayloadBytes = FrameLimits.MaxFrameSize - HeaderSize;

    public static int SizeFor(int payloadLength) => HeaderSize + payloadLength;

    // target or sender (i32: MessageTargets.OtherWorkers, or a worker's relay id, its pid), payload (rest of the frame)
    public static ReadOnlySpan<byte> Write(Span<byte> buffer, int peer, ReadOnlySpan<byte> payload)
    {
        var writer = new FrameWriter(buffer, FrameType.Hub);
        writer.WriteInt32(peer);
        writer.WriteRemaining(payload);
        return writer.Written;
    }

    public static int Read(ReadOnlySpan<byte> frame, out ReadOnlySpan<byte> payload)
    {
        var reader = new FrameReader(frame, FrameType.Hub);
        var peer = reader.ReadInt32();
        payload = reader.ReadRemaining();
        return peer;
    }
}
