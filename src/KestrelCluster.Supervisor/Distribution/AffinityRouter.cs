using KestrelCluster.Interop;
using KestrelCluster.Supervisor.Accept;

namespace KestrelCluster.Supervisor.Distribution;

// Request-aware affinity (README "SignalR and Blazor Server"): each new connection goes to the worker its first
// request's affinity cookie names, so a SignalR transport request or a Blazor reconnect reaches the worker that
// holds its connection or circuit. The bytes are peeked, never consumed. A connection whose request has not come
// yet waits in its listener's poll set (FirstBytesWait), bounded in number and time; the accept thread never
// blocks on a client. Off until a worker reports SignalR or Blazor Server endpoints (or --affinity on): until then
// the accept path is exactly the plain one.
internal sealed class AffinityRouter(Dispatcher dispatcher, bool clientKeys)
{
    private volatile bool _isOn;

    public bool IsOn => _isOn;

    /// <summary>Turns affinity on; true the first time.</summary>
    public bool TurnOn()
    {
        var was = _isOn;
        _isOn = true;
        return !was;
    }

    /// <summary>
    /// Routes the connections whose first request can be read now; on the listener's accept thread, keeps the others
    /// waiting (elsewhere, as with connections an upgrade hands over, they go on at once).
    /// </summary>
    public void Route(ReadOnlySpan<int> fds, ClusterListener listener)
    {
        var wait = listener.OnAcceptThread ? listener.FirstBytes ??= new FirstBytesWait(RouteWaited, listener) : null;
        var now = Environment.TickCount64;
        var deadline = now + FirstBytesWait.MaxWaitMilliseconds;
        Span<int> routed = stackalloc int[fds.Length];
        Span<ulong> keys = stackalloc ulong[fds.Length];
        Span<int> workers = stackalloc int[fds.Length];
        var count = 0;
        foreach (var fd in fds)
        {
            var (hint, partial) = Peek(fd, final: wait is null);
            if (hint.Kind == FirstRequestKind.Incomplete && wait!.TryAdd(fd, deadline, partial, now))
            {
                continue;
            }

            Decide(fd, hint, ref routed[count], ref keys[count], ref workers[count]);
            count++;
        }

        if (count > 0)
        {
            dispatcher.Dispatch(routed[..count], listener.Id, keys[..count], workers[..count]);
        }
    }

    /// <summary>Connections taken out of the wait set: the bytes came (or the peer closed), or their time is up (final).</summary>
    internal void RouteWaited(ReadOnlySpan<int> fds, ReadOnlySpan<bool> final, ReadOnlySpan<long> deadlines, FirstBytesWait wait, int listenerId)
    {
        Span<int> routed = stackalloc int[fds.Length];
        Span<ulong> keys = stackalloc ulong[fds.Length];
        Span<int> workers = stackalloc int[fds.Length];
        var count = 0;
        var now = Environment.TickCount64;
        for (var i = 0; i < fds.Length; i++)
        {
            var (hint, partial) = Peek(fds[i], final[i]);
            if (hint.Kind == FirstRequestKind.Incomplete && wait.TryAdd(fds[i], deadlines[i], partial, now))
            {
                // Part of a request so far: it keeps waiting, with the time it had.
                continue;
            }

            Decide(fds[i], hint, ref routed[count], ref keys[count], ref workers[count]);
            count++;
        }

        if (count > 0)
        {
            dispatcher.Dispatch(routed[..count], listenerId, keys[..count], workers[..count]);
        }
    }

    private void Decide(int fd, FirstRequestHint hint, ref int routed, ref ulong key, ref int worker)
    {
        routed = fd;
        worker = hint.Kind == FirstRequestKind.Http ? hint.Worker : -1;
        key = hint.Kind == FirstRequestKind.Opaque || clientKeys ? ClientKey.Of(fd) : 0;
    }

    // Partial: some bytes came, not yet a whole request line and headers.
    private static unsafe (FirstRequestHint Hint, bool Partial) Peek(int fd, bool final)
    {
        var buffer = stackalloc byte[FirstRequest.PeekSize];
        nint read;
        do
        {
            read = Libc.Recv(fd, buffer, FirstRequest.PeekSize, Libc.MSG_PEEK | Libc.MSG_DONTWAIT);
        }
        while (read < 0 && Errno.Last == Errno.EINTR);

        if (read < 0)
        {
            // EAGAIN: nothing yet. Anything else (a reset): the worker finds out; nothing to read here.
            return (Errno.Last == Errno.EAGAIN && !final ? new(FirstRequestKind.Incomplete) : new(FirstRequestKind.Http), false);
        }

        // 0: the peer closed before sending a request.
        return (FirstRequest.Read(new ReadOnlySpan<byte>(buffer, (int)read), final || read == 0 || read == FirstRequest.PeekSize), read > 0);
    }
}
