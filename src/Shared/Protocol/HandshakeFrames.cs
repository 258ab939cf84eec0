using System.Text;

namespace KestrelCluster.Protocol;

// The worker joins: Hello (worker → supervisor), Welcome (supervisor → worker), and later Ready (worker → supervisor).

internal static class HelloFrame
{
    public const int HeaderSize = 1 + sizeof(int);

    // The token is the environment's, of any length a frame holds.
    public const int MaxSize = FrameLimits.MaxFrameSize;

    public static int SizeFor(string token) => HeaderSize + Encoding.UTF8.GetByteCount(token);

    // pid (i32), token (UTF-8, rest of the frame)
    public static ReadOnlySpan<byte> Write(Span<byte> buffer, int pid, string token)
    {
        var writer = new FrameWriter(buffer, FrameType.Hello);
        writer.WriteInt32(pid);
        writer.WriteRemainingString(token);
        return writer.Written;
    }

    public static (int Pid, string Token) Read(ReadOnlySpan<byte> frame)
    {
        var reader = new FrameReader(frame, FrameType.Hello);
        var pid = reader.ReadInt32();
        return (pid, reader.ReadRemainingString());
    }
}

internal static class WelcomeFrame
{
    public const int Size = 1 + sizeof(int) + sizeof(int);

    // worker id (i32), generation (i32)
    public static ReadOnlySpan<byte> Write(Span<byte> buffer, int workerId, int generation)
    {
        var writer = new FrameWriter(buffer, FrameType.Welcome);
        writer.WriteInt32(workerId);
        writer.WriteInt32(generation);
        return writer.Written;
    }

    public static (int WorkerId, int Generation) Read(ReadOnlySpan<byte> frame)
    {
        var reader = new FrameReader(frame, FrameType.Welcome);
        var workerId = reader.ReadInt32();
        var generation = reader.ReadInt32();
        reader.EnsureEnd();
        return (workerId, generation);
    }
}

internal static class ReadyFrame
{
    public const int MaxSize = 1 + sizeof(byte);

    // features (u8), or nothing for a supervisor older than protocol revision 2 (it refuses any byte after the type)
    public static ReadOnlySpan<byte> Write(Span<byte> buffer, WorkerFeatures? features)
    {
        var writer = new FrameWriter(buffer, FrameType.Ready);
        if (features is { } value)
        {
            writer.WriteByte((byte)value);
        }

        return writer.Written;
    }

    public static WorkerFeatures Read(ReadOnlySpan<byte> frame)
    {
        var reader = new FrameReader(frame, FrameType.Ready);
        var features = reader.Remaining > 0 ? (WorkerFeatures)reader.ReadByte() : WorkerFeatures.None;
        reader.EnsureEnd();
        return features;
    }
}
