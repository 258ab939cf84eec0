using KestrelCluster.Interop;

namespace KestrelCluster.Supervisor.Accept;

/// <summary>Routes connections taken out of the wait set: the bytes came (or the peer closed), or their time is up (final).</summary>
// The affinity router's: Distribution uses Accept, never the reverse.
internal delegate void WaitedHandler(ReadOnlySpan<int> fds, ReadOnlySpan<bool> final, ReadOnlySpan<long> deadlines, FirstBytesWait wait, int listenerId);

// A listener's connections whose first request has not arrived yet (request-aware affinity). Owned by the
// listener's accept thread, which polls them together with its listening socket. Bounded: past Capacity a new
// connection is not kept waiting, and one waits at most MaxWaitMilliseconds; either way it then goes the plain way
// (round-robin). Browsers open connections ahead of need and send on them seconds later, hence a long wait.
internal sealed class FirstBytesWait(WaitedHandler route, ClusterListener listener)
{
    public const int Capacity = 512;
    public const int MaxWaitMilliseconds = 10_000;

    // Part of a request has come: unread bytes keep a socket readable, so it is looked at again on a timer, not
    // on POLLIN (which would spin), and the rest of its headers must follow soon.
    private const int PartialRecheckMilliseconds = 10;
    private const int PartialWaitMilliseconds = 1_000;

    private readonly int[] _fds = new int[Capacity];
    private readonly long[] _deadlines = new long[Capacity];
    // 0: waiting for POLLIN; else when to peek again (a partial request).
    private readonly long[] _recheckAt = new long[Capacity];

    public int Count { get; private set; }

    public bool TryAdd(int fd, long deadline, bool partial, long now)
    {
        if (Count == Capacity)
        {
            return false;
        }

        _fds[Count] = fd;
        _deadlines[Count] = partial ? Math.Min(deadline, now + PartialWaitMilliseconds) : deadline;
        _recheckAt[Count] = partial ? now + PartialRecheckMilliseconds : 0;
        Count++;
        return true;
    }

    /// <summary>One poll entry per waiting connection; returns how long the accept thread may sleep at most (ms).</summary>
    public int FillPoll(Span<Libc.PollFd> polls, long now)
    {
        var next = long.MaxValue;
        for (var i = 0; i < Count; i++)
        {
            var partial = _recheckAt[i] != 0;
            // Events 0 still reports a hang-up or an error.
            polls[i] = new Libc.PollFd { Fd = _fds[i], Events = partial ? (short)0 : Libc.POLLIN };
            next = Math.Min(next, partial ? _recheckAt[i] : _deadlines[i]);
        }

        return (int)Math.Clamp(next - now, 0, MaxWaitMilliseconds);
    }

    /// <summary>After the poll of <see cref="FillPoll"/>: routes the connections whose bytes came, closed, failed or ran out of time.</summary>
    public void Polled(ReadOnlySpan<Libc.PollFd> polls, long now)
    {
        Span<int> due = stackalloc int[Count];
        Span<bool> final = stackalloc bool[Count];
        Span<long> deadlines = stackalloc long[Count];
        var dueCount = 0;
        var kept = 0;
        for (var i = 0; i < Count; i++)
        {
            var expired = now >= _deadlines[i] || (polls[i].Revents & (Libc.POLLHUP | Libc.POLLERR)) != 0;
            if (expired || polls[i].Revents != 0 || (_recheckAt[i] != 0 && now >= _recheckAt[i]))
            {
                due[dueCount] = _fds[i];
                final[dueCount] = expired;
                deadlines[dueCount] = _deadlines[i];
                dueCount++;
                continue;
            }

            _fds[kept] = _fds[i];
            _deadlines[kept] = _deadlines[i];
            _recheckAt[kept] = _recheckAt[i];
            kept++;
        }

        Count = kept;
        if (dueCount > 0)
        {
            route(due[..dueCount], final[..dueCount], deadlines[..dueCount], this, listener.Id);
        }
    }

    /// <summary>The accept thread stops: every waiting connection goes on now, as it is.</summary>
    public void Flush()
    {
        if (Count == 0)
        {
            return;
        }

        Span<int> due = stackalloc int[Count];
        Span<bool> final = stackalloc bool[Count];
        Span<long> deadlines = stackalloc long[Count];
        _fds.AsSpan(0, Count).CopyTo(due);
        final.Fill(true);
        Count = 0;
        route(due, final, deadlines, this, listener.Id);
    }
}
