namespace KestrelCluster.Protocol;

// One SOCK_SEQPACKET message is one frame: a type byte, then the payload (little-endian). Each type's
// encode and decode live in one <Type>Frame class (HandshakeFrames, BindFrames, ConnectionFrames, RelayFrames).
// Values are part of the wire format between supervisor and worker: never renumber.
internal enum FrameType : byte
{
    // worker → supervisor: pid (i32), token (UTF-8, rest of the frame)
    Hello = 1,
    // supervisor → worker: worker id (i32), generation (i32)
    Welcome = 2,
    // worker → supervisor: request id (i32), endpoint (UTF-8, "127.0.0.1:0", "[::1]:80", "unix:/path")
    Bind = 3,
    // supervisor → worker: request id (i32), listener id (i32, -1 on failure), SocketError (i32), text (bound endpoint or reason)
    BindResult = 4,
    // worker → supervisor: the host has started; connections may come. Then features (u8, WorkerFeatures), sent
    // only to a supervisor of protocol revision 2 or later (KESTREL_CLUSTER_PROTOCOL); absent means none.
    Ready = 5,
    // supervisor → worker: count (u8), count × (listener id i32, sequence i64); the fds ride along in the same message
    Connections = 6,
    // worker → supervisor: count (u16), count × (sequence i64, accepted u8)
    Acks = 7,
    // worker → supervisor: listener id (i32): Kestrel stopped accepting on it
    Unbind = 8,
    // supervisor → worker: drain and exit
    Stop = 9,
    // worker → supervisor, every second: open connections (i32); also the worker's heartbeat
    Status = 10,
    // worker → supervisor: target (i32: -1 the supervisor, -2 every other worker), JSON (UTF-8, rest)
    // supervisor → worker: sender (i32: a worker id, or -1 for the supervisor and the CLI), JSON (UTF-8, rest)
    Message = 11,
    // SignalR backplane traffic, relayed as is, in order per sender, and never parsed by the supervisor.
    // worker → supervisor: target (i32: -2 every other worker, or one worker's relay id), payload (rest)
    // supervisor → worker: sender's relay id (i32: its pid), payload (rest)
    Hub = 12,
}

// What a worker's app needs of the supervisor, from its Ready frame.
[Flags]
internal enum WorkerFeatures : byte
{
    None = 0,
    // SignalR or Blazor Server endpoints (a negotiate endpoint): route each connection by its first request.
    RealTimeEndpoints = 1,
}

internal static class MessageTargets
{
    public const int Supervisor = -1;
    public const int OtherWorkers = -2;
}

internal static class FrameLimits
{
    // Bounds a peer cannot exceed without being dropped.
    internal const int MaxFrameSize = 64 * 1024;
    internal const int MaxFdsPerFrame = 16;
}
