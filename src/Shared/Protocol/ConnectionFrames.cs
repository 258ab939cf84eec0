namespace KestrelCluster.Protocol;

// The hot path and the worker's pulse: Connections (supervisor → worker, the fds ride along), Acks, Status (worker →
// supervisor) and Stop (supervisor → worker). Connections and Acks are written into stackalloc'd buffers and read
// entry by entry: no allocation per connection.

internal static class ConnectionsFrame
{
    private const int HeaderSize = 1 + sizeof(byte);
    private const int EntrySize = sizeof(int) + sizeof(long);

    public const int MaxSize = HeaderSize + (FrameLimits.MaxFdsPerFrame * EntrySize);

    public static int SizeFor(int count) => HeaderSize + (count * EntrySize);

    // count (u8), then count × (listener id i32, sequence i64), one per fd of the message, in order; the entries
    // follow through Add. A plain FrameWriter/FrameReader passed by ref: a wrapper struct measured ~10 ns slower a frame.
    public static FrameWriter Begin(Span<byte> buffer, int count)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, FrameLimits.MaxFdsPerFrame);
        var writer = new FrameWriter(buffer, FrameType.Connections);
        writer.WriteByte((byte)count);
        return writer;
    }

    public static void Add(ref FrameWriter writer, int listenerId, long sequence)
    {
        writer.WriteInt32(listenerId);
        writer.WriteInt64(sequence);
    }

    // Reads the count; the entries follow through Next, each checked as it is read.
    public static FrameReader Read(ReadOnlySpan<byte> frame, out int count)
    {
        var reader = new FrameReader(frame, FrameType.Connections);
        count = reader.ReadByte();
        if (count > FrameLimits.MaxFdsPerFrame)
        {
            throw new InvalidFrameException($"{count} connections in one frame");
        }

        return reader;
    }

    public static (int ListenerId, long Sequence) Next(ref FrameReader reader)
    {
        var listenerId = reader.ReadInt32();
        return (listenerId, reader.ReadInt64());
    }
}

internal static class AcksFrame
{
    private const int HeaderSize = 1 + sizeof(ushort);
    private const int EntrySize = sizeof(long) + sizeof(byte);

    // More in one frame is a broken or hostile worker.
    public const int MaxCount = 1024;

    public static int SizeFor(int count) => HeaderSize + (count * EntrySize);

    // count (u16), then count × (sequence i64, accepted u8: 0 or 1)
    public static ReadOnlySpan<byte> Write(Span<byte> buffer, ReadOnlySpan<long> sequences, bool accepted)
    {
        var writer = new FrameWriter(buffer, FrameType.Acks);
        writer.WriteUInt16((ushort)sequences.Length);
        foreach (var sequence in sequences)
        {
            writer.WriteInt64(sequence);
            writer.WriteByte(accepted ? (byte)1 : (byte)0);
        }

        return writer.Written;
    }

    // Reads and bounds the count; the entries follow through Next, then the reader's EnsureEnd.
    public static FrameReader Read(ReadOnlySpan<byte> frame, out int count)
    {
        var reader = new FrameReader(frame, FrameType.Acks);
        count = reader.ReadUInt16();
        if (count > MaxCount)
        {
            throw new InvalidFrameException($"{count} acknowledgements in one frame");
        }

        return reader;
    }

    public static (long Sequence, bool Accepted) Next(ref FrameReader reader)
    {
        var sequence = reader.ReadInt64();
        var accepted = reader.ReadByte() switch
        {
            0 => false,
            1 => true,
            var other => throw new InvalidFrameException($"acknowledgement value {other}"),
        };
        return (sequence, accepted);
    }
}

internal static class StatusFrame
{
    public const int Size = 1 + sizeof(int);

    // open connections (i32); the frame is also the worker's heartbeat
    public static ReadOnlySpan<byte> Write(Span<byte> buffer, int openConnections)
    {
        var writer = new FrameWriter(buffer, FrameType.Status);
        writer.WriteInt32(openConnections);
        return writer.Written;
    }

    public static int Read(ReadOnlySpan<byte> frame)
    {
        var reader = new FrameReader(frame, FrameType.Status);
        var openConnections = reader.ReadInt32();
        reader.EnsureEnd();
        return openConnections;
    }
}

internal static class StopFrame
{
    public const int Size = 1;

    // The type alone; a worker reads nothing after it.
    public static ReadOnlySpan<byte> Write(Span<byte> buffer) => new FrameWriter(buffer, FrameType.Stop).Written;
}
