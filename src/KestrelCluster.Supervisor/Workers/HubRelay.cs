using System.Buffers;
using KestrelCluster.Protocol;
using KestrelCluster.Supervisor.Logging;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Supervisor.Workers;

// Relays SignalR backplane frames between workers (AddSignalR().AddKestrelCluster()). Runs on the sender's receive
// loop, not the supervisor's event loop: hub traffic never waits behind accepts and control commands, and each
// sender's frames reach every other worker in the order it sent them. A worker is addressed by its pid
// (SO_PEERCRED), unique among live workers even while two generations of a slot overlap in a reload.
internal sealed class HubRelay(ILogger logger)
{
    private static readonly long DropLogInterval = 1000;
    private readonly Lock _lock = new();
    private WorkerSession[] _sessions = [];
    private long _dropped;
    private long _lastDropLogAt = long.MinValue;

    public void Add(WorkerSession session)
    {
        lock (_lock)
        {
            _sessions = [.. _sessions, session];
        }
    }

    public void Remove(WorkerSession session)
    {
        lock (_lock)
        {
            _sessions = [.. _sessions.Where(s => s != session)];
        }
    }

    public void Relay(WorkerSession from, int target, ReadOnlySpan<byte> payload)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(HubFrame.SizeFor(payload.Length));
        try
        {
            var frame = HubFrame.Write(buffer, from.Peer.ProcessId, payload);
            foreach (var session in Volatile.Read(ref _sessions))
            {
                if (session == from || target != MessageTargets.OtherWorkers && session.Peer.ProcessId != target)
                {
                    continue;
                }

                // Never waits: a worker whose channel is full (frozen, or far behind) misses the frame rather
                // than stall every other worker's traffic.
                if (session.TrySendHubFrame(frame) != 0)
                {
                    OnDropped(session);
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private void OnDropped(WorkerSession session)
    {
        var dropped = Interlocked.Increment(ref _dropped);
        var now = Environment.TickCount64;
        var last = Volatile.Read(ref _lastDropLogAt);
        if (now - last >= DropLogInterval && Interlocked.CompareExchange(ref _lastDropLogAt, now, last) == last)
        {
            // At most once a second, with the count so far: a worker far behind would otherwise flood the log.
            SupervisorLog.HubFramesDropped(logger, session.Instance.SlotId, session.Peer.ProcessId, dropped);
        }
    }
}
