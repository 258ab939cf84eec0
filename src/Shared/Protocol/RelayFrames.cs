namespace KestrelCluster.Protocol;

// Traffic between workers through the supervisor, both directions: a peer (i32) then a payload (the rest).
// worker → supervisor: the target; supervisor → worker: the sender. Message and Hub frames share this layout.
internal static class RelayFrame
{
    public const int HeaderSize = 1 + sizeof(int);

    public static ReadOnlySpan<byte> Write(Span<byte> buffer, FrameType type, int peer, ReadOnlySpan<byte> payload)
    {
        var writer = new FrameWriter(buffer, type);
        writer.WriteInt32(peer);
        writer.WriteRemaining(payload);
        return writer.Written;
    }

    public static int Read(ReadOnlySpan<byte> frame, FrameType type, out ReadOnlySpan<byte> payload)
    {
        var reader = new FrameReader(frame, type);
        var peer = reader.ReadInt32();
        payload = reader.ReadRemaining();
        return peer;
    }
}

// target or sender (i32: MessageTargets, or a worker id), JSON (UTF-8, rest of the frame)
internal static class MessageFrame
{
    public const int HeaderSize = RelayFrame.HeaderSize;

    // The JSON a message may hold; the bound predates this codec and keeps room to spare.
    public const int MaxJsonBytes = FrameLimits.MaxFrameSize - 16;

    public static int SizeFor(int jsonLength) => HeaderSize + jsonLength;

    public static ReadOnlySpan<byte> Write(Span<byte> buffer, int peer, ReadOnlySpan<byte> json) => RelayFrame.Write(buffer, FrameType.Message, peer, json);

    public static int Read(ReadOnlySpan<byte> frame, out ReadOnlySpan<byte> json) => RelayFrame.Read(frame, FrameType.Message, out json);
}

// SignalR backplane traffic, relayed as is and never parsed by the supervisor (its payload: HubPayload.cs).
// target or sender (i32: MessageTargets.OtherWorkers, or a worker's relay id, its pid), payload (rest of the frame)
internal static class HubFrame
{
    public const int HeaderSize = RelayFrame.HeaderSize;

    public const int MaxPayloadBytes = FrameLimits.MaxFrameSize - HeaderSize;

    public static int SizeFor(int payloadLength) => HeaderSize + payloadLength;

    public static ReadOnlySpan<byte> Write(Span<byte> buffer, int peer, ReadOnlySpan<byte> payload) => RelayFrame.Write(buffer, FrameType.Hub, peer, payload);

    public static int Read(ReadOnlySpan<byte> frame, out ReadOnlySpan<byte> payload) => RelayFrame.Read(frame, FrameType.Hub, out payload);
}
