using KestrelCluster.Interop;

namespace KestrelCluster.Supervisor.Distribution;

// Hands accepted connections to ready workers (round-robin, least-connections or sticky by client address; the
// slot request-aware affinity names first), with a bounded window of unacknowledged connections per worker. A connection leaves the supervisor only when a worker acknowledges it: a refused
// connection, or one held by a worker that died, goes to the next worker (Node's round_robin_handle.js).
// With no worker able to take it, it waits, bounded in number and time, instead of being dropped.
internal sealed class Dispatcher
{
    public const int DefaultWindow = 32;

    // Sticky leaves its worker only when this many connections are unacknowledged, so a burst of new
    // connections from one address (64 at once from a load tester) stays on one worker. It stays below the
    // ~278 messages a channel holds, so reaching it means the worker is stuck, not just busy.
    public const int StickyWindow = 256;
    public const int DefaultMaxWaiting = 4096;

    private readonly object _gate = new();
    private readonly List<DispatchTarget> _ready = [];
    private readonly LinkedList<Handoff> _waiting = new();
    private readonly int _window;
    private readonly int _maxWaiting;
    private readonly long _maxWaitTicks;
    private readonly Func<long> _clock;
    private readonly BalanceMode _balance;
    private int _next;
    private long _sequence;
    private bool _closed;
    // Set while the accept thread dispatches a batch under the lock: sends are queued per worker, then flushed.
    private bool _batching;

    public Dispatcher(TimeSpan maxWait, int window = DefaultWindow, int maxWaiting = DefaultMaxWaiting, Func<long>? clock = null, BalanceMode balance = BalanceMode.RoundRobin)
    {
        _balance = balance;
        _window = window;
        _maxWaiting = maxWaiting;
        _maxWaitTicks = (long)maxWait.TotalMilliseconds;
        _clock = clock ?? (() => Environment.TickCount64);
    }

    public long Redispatched { get; private set; }

    // Totals for metrics (read without the lock: a torn read of a counter is harmless on 64-bit).
    public long Accepted { get; private set; }

    public long Refused { get; private set; }

    public long Dispatched { get; private set; }

    /// <summary>Called (on the acknowledging thread, keep it cheap) when a worker accepts a connection: the accept's Stopwatch timestamp.</summary>
    public Action<long>? HandoffCompleted { get; set; }

    public long Expired { get; private set; }

    public int WaitingCount
    {
        get
        {
            lock (_gate)
            {
                return _waiting.Count;
            }
        }
    }

    public int UnackedCount
    {
        get
        {
            lock (_gate)
            {
                return _ready.Sum(t => t.Unacked.Count);
            }
        }
    }

    public int UnackedOf(DispatchTarget target)
    {
        lock (_gate)
        {
            return target.Unacked.Count;
        }
    }

    /// <summary>
    /// Takes ownership of fds accepted together (keys: their client hashes for sticky, or empty; workers: the slot
    /// each one's affinity cookie names, -1 for none, or empty). Each worker gets its share of them in one frame.
    /// Blocks the accept thread while the waiting queue is full.
    /// </summary>
    public void Dispatch(ReadOnlySpan<int> fds, int listenerId, ReadOnlySpan<ulong> keys = default, ReadOnlySpan<int> workers = default)
    {
        lock (_gate)
        {
            _batching = true;
            try
            {
                for (var i = 0; i < fds.Length; i++)
                {
                    while (_waiting.Count >= _maxWaiting && !_closed)
                    {
                        // Leave further connections in the kernel's backlog until a worker frees room. Other
                        // threads take the lock meanwhile: their sends must go out at once, not join this batch.
                        FlushLocked();
                        _batching = false;
                        Monitor.Wait(_gate, 100);
                        _batching = true;
                        ExpireWaitingLocked();
                    }

                    if (_closed)
                    {
                        foreach (var fd in fds[i..])
                        {
                            Libc.Close(fd);
                        }

                        return;
                    }

                    var handoff = new Handoff(fds[i], listenerId, _clock(), System.Diagnostics.Stopwatch.GetTimestamp(), keys.IsEmpty ? 0 : keys[i], workers.IsEmpty ? -1 : workers[i]);
                    if (_waiting.Count > 0 || !TrySendLocked(handoff))
                    {
                        _waiting.AddLast(handoff);
                    }
                }
            }
            finally
            {
                FlushLocked();
                _batching = false;
            }
        }
    }

    public void SetBound(DispatchTarget target, int listenerId, bool bound)
    {
        lock (_gate)
        {
            target.BoundListeners = bound ? target.BoundListeners | (1UL << listenerId) : target.BoundListeners & ~(1UL << listenerId);
            if (bound)
            {
                DrainWaitingLocked();
            }
        }
    }

    public void AddReady(DispatchTarget target)
    {
        lock (_gate)
        {
            if (target.IsLost || target.IsReady)
            {
                return;
            }

            target.IsReady = true;
            _ready.Add(target);
            DrainWaitingLocked();
        }
    }

    /// <summary>No new connections for this worker (it drains); what it holds it will still acknowledge.</summary>
    public void StopDispatching(DispatchTarget target)
    {
        lock (_gate)
        {
            target.IsReady = false;
            _ready.Remove(target);
        }
    }

    /// <summary>The worker's channel is gone: every connection it had not acknowledged goes to another worker.</summary>
    public int Lost(DispatchTarget target)
    {
        lock (_gate)
        {
            target.IsReady = false;
            target.IsLost = true;
            _ready.Remove(target);
            var orphans = target.Unacked.Values.OrderBy(h => h.AcceptedAt).ToList();
            target.Unacked.Clear();
            // Oldest first, ahead of everything that is waiting already.
            for (var i = orphans.Count - 1; i >= 0; i--)
            {
                _waiting.AddFirst(orphans[i]);
            }

            Redispatched += orphans.Count;
            DrainWaitingLocked();
            return orphans.Count;
        }
    }

    /// <summary>The worker's Status frame: its open connection count now.</summary>
    public void ReportOpen(DispatchTarget target, int openConnections)
    {
        lock (_gate)
        {
            target.ReportedOpen = Math.Max(0, openConnections);
            target.AcceptedAtReport = target.Accepted;
        }
    }

    /// <summary>Returns false when the sequence is not one this worker holds (a protocol violation).</summary>
    public bool Acknowledge(DispatchTarget target, long sequence, bool accepted)
    {
        Handoff handoff;
        lock (_gate)
        {
            if (!target.Unacked.Remove(sequence, out handoff))
            {
                return false;
            }

            if (accepted)
            {
                target.Accepted++;
                Accepted++;
            }
            else
            {
                Refused++;
                // It goes to another worker: the refuser comes last, since it may still look bound here
                // (the transport can refuse before its Unbind frame arrives) and would only refuse again.
                Redispatched++;
                if (!TrySendLocked(handoff, except: target))
                {
                    _waiting.AddFirst(handoff);
                }
            }

            if (_waiting.Count > 0)
            {
                DrainWaitingLocked();
            }
        }

        if (accepted)
        {
            // Outside the lock, which the accept thread wants for the next connection.
            Libc.Close(handoff.Fd);
            HandoffCompleted?.Invoke(handoff.Timestamp);
        }

        return true;
    }

    /// <summary>Closes connections that waited longer than allowed; returns how many.</summary>
    public int ExpireWaiting()
    {
        lock (_gate)
        {
            return ExpireWaitingLocked();
        }
    }

    /// <summary>Upgrade: takes out every connection still waiting for a worker, for the new supervisor; the caller owns the fds.</summary>
    public IReadOnlyList<(int Fd, int ListenerId)> TakeWaiting()
    {
        lock (_gate)
        {
            var taken = _waiting.Select(h => (h.Fd, h.ListenerId)).ToList();
            _waiting.Clear();
            Monitor.PulseAll(_gate);
            return taken;
        }
    }

    /// <summary>At shutdown: closes everything still waiting and refuses new connections.</summary>
    public int Close()
    {
        lock (_gate)
        {
            _closed = true;
            var count = _waiting.Count;
            foreach (var handoff in _waiting)
            {
                Libc.Close(handoff.Fd);
            }

            _waiting.Clear();
            Monitor.PulseAll(_gate);
            return count;
        }
    }

    internal IReadOnlyList<DispatchTarget> ReadyTargets()
    {
        lock (_gate)
        {
            return [.. _ready];
        }
    }

    private void DrainWaitingLocked()
    {
        var freed = false;
        while (_waiting.First is { } first)
        {
            if (!TrySendLocked(first.Value))
            {
                break;
            }

            _waiting.RemoveFirst();
            freed = true;
        }

        ExpireWaitingLocked();
        if (freed)
        {
            Monitor.PulseAll(_gate);
        }
    }

    private int ExpireWaitingLocked()
    {
        var expired = 0;
        var now = _clock();
        var node = _waiting.First;
        while (node is not null)
        {
            var next = node.Next;
            if (now - node.Value.AcceptedAt > _maxWaitTicks)
            {
                Libc.Close(node.Value.Fd);
                _waiting.Remove(node);
                expired++;
            }

            node = next;
        }

        if (expired > 0)
        {
            Expired += expired;
            Monitor.PulseAll(_gate);
        }

        return expired;
    }

    private bool TrySendLocked(Handoff handoff, DispatchTarget? except = null)
    {
        if (handoff.Worker >= 0 && TrySendToSlotLocked(handoff, except))
        {
            return true;
        }

        // A key outside sticky mode comes from request-aware affinity: a TLS connection, placed by client address.
        return _balance switch
        {
            _ when handoff.Key != 0 => TrySendRankedLocked(handoff, except, static (t, key) => (long)(ClientKey.Score(key, t.Id) >> 1)),
            BalanceMode.LeastConnections => TrySendRankedLocked(handoff, except, static (t, _) => -t.EstimatedOpen),
            _ => TrySendRoundRobinLocked(handoff, except),
        };
    }

    // The worker that holds the client's SignalR connection or Blazor circuit, with sticky's larger window: a burst
    // of reconnects stays with it. If that slot is gone or stuck, the caller picks another (the client renegotiates).
    private bool TrySendToSlotLocked(Handoff handoff, DispatchTarget? except)
    {
        foreach (var target in _ready)
        {
            if (target.Id == handoff.Worker)
            {
                return CanTake(target, handoff, except, StickyWindow) && SendLocked(target, handoff);
            }
        }

        return false;
    }

    private bool CanTake(DispatchTarget target, Handoff handoff, DispatchTarget? except, int? window = null)
        => target != except && target.Unacked.Count < (window ?? _window) && target.Serves(handoff.ListenerId);

    private bool TrySendRoundRobinLocked(Handoff handoff, DispatchTarget? except)
    {
        var count = _ready.Count;
        for (var i = 0; i < count; i++)
        {
            var index = (_next + i) % count;
            var target = _ready[index];
            if (!CanTake(target, handoff, except) || !SendLocked(target, handoff))
            {
                continue;
            }

            _next = (index + 1) % count;
            return true;
        }

        return false;
    }

    // The worker with the highest rank gets it; ties go round-robin. A worker whose window is full or whose
    // channel is full (EAGAIN) is skipped for the next best: under overload sticky is best-effort.
    private bool TrySendRankedLocked(Handoff handoff, DispatchTarget? except, Func<DispatchTarget, ulong, long> rank)
    {
        var count = _ready.Count;
        Span<bool> tried = count <= 256 ? stackalloc bool[count] : new bool[count];
        for (var attempt = 0; attempt < count; attempt++)
        {
            var best = -1;
            var bestRank = long.MinValue;
            for (var i = 0; i < count; i++)
            {
                var index = (_next + i) % count;
                var target = _ready[index];
                if (tried[index] || !CanTake(target, handoff, except))
                {
                    continue;
                }

                var value = rank(target, handoff.Key);
                if (best < 0 || value > bestRank)
                {
                    best = index;
                    bestRank = value;
                }
            }

            if (best < 0)
            {
                return false;
            }

            if (SendLocked(_ready[best], handoff))
            {
                _next = (best + 1) % count;
                return true;
            }

            tried[best] = true;
        }

        return false;
    }

    private bool SendLocked(DispatchTarget target, Handoff handoff)
    {
        if (_batching)
        {
            // Part of an accept batch: queued for this worker, sent with the rest when the batch ends.
            if (target.PendingCount == target.Pending.Length)
            {
                FlushLocked(target);
                if (!CanTake(target, handoff, except: null))
                {
                    return false;
                }
            }

            var queued = ++_sequence;
            target.Pending[target.PendingCount++] = new OutgoingConnection(handoff.ListenerId, queued, handoff.Fd);
            Track(target, queued, handoff);
            return true;
        }

        var sequence = ++_sequence;
        var errno = target.SendConnections([new OutgoingConnection(handoff.ListenerId, sequence, handoff.Fd)]);
        if (errno != 0)
        {
            // EAGAIN: the worker is behind; anything else: it is going away and its session will say so.
            return false;
        }

        Track(target, sequence, handoff);
        return true;
    }

    private void Track(DispatchTarget target, long sequence, Handoff handoff)
    {
        target.Unacked[sequence] = handoff;
        target.Dispatched++;
        Dispatched++;
    }

    private void FlushLocked()
    {
        var batching = _batching;
        _batching = false;
        try
        {
            // Only ready workers are given connections, and none leaves the list while the lock is held.
            // Flushing a worker whose send fails hands its connections to others one by one (not batched).
            foreach (var target in _ready)
            {
                FlushLocked(target);
            }
        }
        finally
        {
            _batching = batching;
        }
    }

    private void FlushLocked(DispatchTarget target)
    {
        var count = target.PendingCount;
        if (count == 0)
        {
            return;
        }

        target.PendingCount = 0;
        var errno = target.SendConnections(target.Pending.AsSpan(0, count));
        if (errno == 0)
        {
            return;
        }

        // Not sent (its channel is full, or it is going away): take them back and hand them to the others.
        var batching = _batching;
        _batching = false;
        try
        {
            for (var i = 0; i < count; i++)
            {
                if (!target.Unacked.Remove(target.Pending[i].Sequence, out var handoff))
                {
                    continue;
                }

                target.Dispatched--;
                Dispatched--;
                if (!TrySendLocked(handoff, except: target))
                {
                    _waiting.AddLast(handoff);
                }
            }
        }
        finally
        {
            _batching = batching;
        }
    }
}
