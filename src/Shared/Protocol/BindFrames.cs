using System.Net.Sockets;

namespace KestrelCluster.Protocol;

// An endpoint's life: Bind (worker → supervisor), BindResult (supervisor → worker), Unbind (worker → supervisor).

internal static class BindFrame
{
    public const int HeaderSize = 1 + sizeof(int);
    public const int MaxSize = FrameLimits.MaxFrameSize;

    // request id (i32), endpoint (EndpointText, UTF-8, rest of the frame)
    public static ReadOnlySpan<byte> Write(Span<byte> buffer, int requestId, string endpoint)
    {
        var writer = new FrameWriter(buffer, FrameType.Bind);
        writer.WriteInt32(requestId);
        writer.WriteRemainingString(endpoint);
        return writer.Written;
    }

    public static (int RequestId, string Endpoint) Read(ReadOnlySpan<byte> frame)
    {
        var reader = new FrameReader(frame, FrameType.Bind);
        var requestId = reader.ReadInt32();
        return (requestId, reader.ReadRemainingString());
    }
}

internal static class BindResultFrame
{
    // A reason longer than this is cut: it is for a log line, and the frame must fit.
    public const int MaxTextChars = 4096;
    public const int MaxSize = FrameLimits.MaxFrameSize;

    // request id (i32), listener id (i32, -1 on failure), SocketError (i32), text (bound endpoint or reason, rest)
    public static ReadOnlySpan<byte> Write(Span<byte> buffer, int requestId, int listenerId, SocketError error, string text)
    {
        var writer = new FrameWriter(buffer, FrameType.BindResult);
        writer.WriteInt32(requestId);
        writer.WriteInt32(listenerId);
        writer.WriteInt32((int)error);
        writer.WriteRemainingString(text.Length > MaxTextChars ? text[..MaxTextChars] : text);
        return writer.Written;
    }

    public static (int RequestId, int ListenerId, SocketError Error, string Text) Read(ReadOnlySpan<byte> frame)
    {
        var reader = new FrameReader(frame, FrameType.BindResult);
        var requestId = reader.ReadInt32();
        var listenerId = reader.ReadInt32();
        var error = (SocketError)reader.ReadInt32();
        return (requestId, listenerId, error, reader.ReadRemainingString());
    }
}

internal static class UnbindFrame
{
    public const int Size = 1 + sizeof(int);

    // listener id (i32)
    public static ReadOnlySpan<byte> Write(Span<byte> buffer, int listenerId)
    {
        var writer = new FrameWriter(buffer, FrameType.Unbind);
        writer.WriteInt32(listenerId);
        return writer.Written;
    }

    public static int Read(ReadOnlySpan<byte> frame)
    {
        var reader = new FrameReader(frame, FrameType.Unbind);
        var listenerId = reader.ReadInt32();
        reader.EnsureEnd();
        return listenerId;
    }
}
