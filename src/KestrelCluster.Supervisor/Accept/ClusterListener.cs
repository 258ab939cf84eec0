using System.Net;
using System.Net.Sockets;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;

namespace KestrelCluster.Supervisor.Accept;

/// <summary>Connections a listener just accepted; the handler owns the fds.</summary>
internal delegate void AcceptedHandler(ReadOnlySpan<int> fds, ClusterListener listener);

// One endpoint, bound once for all workers. A dedicated thread per listening socket takes every connection waiting
// in its backlog at once (up to one frame's worth) and hands them to the dispatcher together, so a burst costs one
// dispatch and one send per worker; with the backlog empty it sleeps in poll(). No allocation per connection.
// With --accept-threads N on TCP the endpoint is N SO_REUSEPORT sockets (the kernel spreads new connections over
// them), because one thread's accept, dispatch and sendmsg cost caps how many connections a second it can hand off.
internal sealed class ClusterListener : IDisposable
{
    private const int MaxBatch = FrameLimits.MaxFdsPerFrame;

    // How long an idle accept thread sleeps before it looks whether it was released (upgrade handover).
    private const int ReleaseCheckMilliseconds = 200;

    private readonly Socket _socket;
    // The sockets the supervisor accepts on, one thread each; the first is _socket.
    private readonly Socket[] _acceptSockets;
    // Connections each accept thread took (metrics); each slot written by its own thread only.
    private readonly long[] _accepted;
    // --balance shared on TCP: a socket per worker slot (the first one is _socket).
    private readonly ReusePortGroup? _group;
    private Thread[]? _acceptThreads;
    private volatile bool _stopped;
    // The socket is another supervisor's too (upgrade handover): never shut it down or unlink its file.
    private volatile bool _released;

    private ClusterListener(int id, string requested, EndPoint boundEndPoint, Socket[] sockets, ReusePortGroup? group = null)
    {
        Id = id;
        Requested = requested;
        BoundEndPoint = boundEndPoint;
        BoundText = EndpointText.Format(boundEndPoint);
        _socket = sockets[0];
        _acceptSockets = sockets;
        _accepted = new long[sockets.Length];
        _group = group;
    }

    public int Id { get; }

    // The endpoint as the app asked for it ("127.0.0.1:0"): workers asking for it again share this listener.
    public string Requested { get; }

    public EndPoint BoundEndPoint { get; }

    public string BoundText { get; }

    /// <summary>The listening socket's fd (the first of a group): what systemd's fd store keeps.</summary>
    public nint Handle => _socket.SafeHandle.DangerousGetHandle();

    /// <summary>Every socket the supervisor accepts on (one per accept thread): what an upgrade hands over.</summary>
    public IReadOnlyList<nint> AcceptHandles => [.. _acceptSockets.Select(s => s.SafeHandle.DangerousGetHandle())];

    public int AcceptThreads => _acceptSockets.Length;

    /// <summary>Connections the given accept thread has taken so far.</summary>
    public long AcceptedBy(int thread) => Volatile.Read(ref _accepted[thread]);

    /// <summary>How new connections are spread over the workers' sockets (--balance shared on TCP), else null.</summary>
    public string? Steering => _group?.Steering;

    /// <summary>
    /// The listening socket a worker of this slot accepts on (--balance shared): its slot's own SO_REUSEPORT socket
    /// for TCP; the one shared socket for a Unix socket (which has no SO_REUSEPORT) or a socket systemd passed.
    /// </summary>
    public nint HandleFor(int slot) => _group?.HandleFor(slot) ?? Handle;

    /// <summary>Scaling down: see <see cref="ReusePortGroup.Retire"/>. Nothing to do with one shared socket.</summary>
    public void RetireSlot(int slot, AcceptedHandler handOff) => _group?.Retire(slot, fds => handOff(fds, this));

    public void SlotGone(int slot) => _group?.SlotGone(slot);

    /// <summary>
    /// Listening sockets someone else bound (systemd socket activation, fd store, an upgrade handover): one endpoint,
    /// one accept thread per socket (several: an upgrade handed over a SO_REUSEPORT group).
    /// </summary>
    /// <param name="requested">The endpoint the app asked for when it was bound ("127.0.0.1:0"), if known.</param>
    /// <param name="released">Still another supervisor's (upgrade): not shut down or unlinked until <see cref="Claim"/>.</param>
    public static ClusterListener Adopt(int id, IReadOnlyList<Socket> sockets, string? requested = null, bool released = false)
    {
        var bound = sockets[0].LocalEndPoint!;
        return new ClusterListener(id, requested ?? EndpointText.Format(bound), bound, [.. sockets]) { _released = released };
    }

    public bool IsAccepting => _acceptThreads is not null && !_stopped;

    // Request-aware affinity's connections waiting for their first request: one set per accept thread, which alone
    // polls it (a thread accepts for one listener only). The accept loop reads it directly: it runs on that thread.
    [ThreadStatic]
    private static FirstBytesWait? t_firstBytes;

    /// <summary>The calling accept thread's connections waiting for their first request; null on any other thread.</summary>
    internal FirstBytesWait? FirstBytes
    {
        get => OnAcceptThread ? t_firstBytes : null;
        set
        {
            if (OnAcceptThread)
            {
                t_firstBytes = value;
            }
        }
    }

    /// <summary>Whether the caller is one of this listener's accept threads (connections handed over in an upgrade come on another).</summary>
    internal bool OnAcceptThread => _acceptThreads is { } threads && Array.IndexOf(threads, Thread.CurrentThread) >= 0;

    /// <summary>This supervisor alone serves the socket now (it took over in an upgrade).</summary>
    public void Claim() => _released = false;

    public static ClusterListener Bind(int id, string requested, EndPoint endPoint, bool socketPerSlot = false, int acceptThreads = 1)
    {
        if (socketPerSlot && endPoint is IPEndPoint)
        {
            var first = ReusePortGroup.CreateSocket(endPoint);
            return new ClusterListener(id, requested, first.LocalEndPoint!, [first], new ReusePortGroup(first));
        }

        if (acceptThreads > 1 && endPoint is IPEndPoint)
        {
            return BindGroup(id, requested, endPoint, acceptThreads);
        }

        var socket = ListeningSocket.Create(endPoint, reusePort: false);
        return new ClusterListener(id, requested, socket.LocalEndPoint!, [socket]);
    }

    // The supervisor's own SO_REUSEPORT group, a socket per accept thread. Its sockets close only at stop: one closed
    // earlier would reset the connections the kernel had queued in it.
    private static ClusterListener BindGroup(int id, string requested, EndPoint endPoint, int count)
    {
        var sockets = new List<Socket>(count);
        try
        {
            sockets.Add(ReusePortGroup.CreateSocket(endPoint));
            // Port 0: the others join the port the first one got.
            var bound = sockets[0].LocalEndPoint!;
            while (sockets.Count < count)
            {
                sockets.Add(ReusePortGroup.CreateSocket(bound));
            }

            return new ClusterListener(id, requested, bound, [.. sockets]);
        }
        catch
        {
            foreach (var socket in sockets)
            {
                socket.Dispose();
            }

            throw;
        }
    }

    public void Start(AcceptedHandler onAccepted, Action<ClusterListener, int> onAcceptError)
    {
        var threads = new Thread[_acceptSockets.Length];
        for (var i = 0; i < threads.Length; i++)
        {
            var index = i;
            // accept4 then says EAGAIN when the backlog is empty, instead of blocking with a batch in hand.
            _acceptSockets[i].Blocking = false;
            threads[i] = new Thread(() => AcceptLoop(index, onAccepted, onAcceptError))
            {
                IsBackground = true,
                Name = threads.Length == 1 ? $"kestrel-cluster accept {BoundText}" : $"kestrel-cluster accept {BoundText} #{i}",
            };
        }

        _acceptThreads = threads;
        foreach (var thread in threads)
        {
            thread.Start();
        }
    }

    private void AcceptLoop(int index, AcceptedHandler onAccepted, Action<ClusterListener, int> onAcceptError)
    {
        try
        {
            AcceptUntilStopped(index, onAccepted, onAcceptError);
        }
        finally
        {
            // Accepted connections are never dropped here: those still waiting for their first bytes go on as they are.
            t_firstBytes?.Flush();
        }
    }

    private void AcceptUntilStopped(int index, AcceptedHandler onAccepted, Action<ClusterListener, int> onAcceptError)
    {
        var handle = _acceptSockets[index].SafeHandle.DangerousGetHandle();
        Span<int> batch = stackalloc int[MaxBatch];
        while (!_stopped)
        {
            var count = 0;
            var errno = 0;
            while (count < batch.Length)
            {
                var fd = Libc.Accept4(handle, 0, 0, Libc.SOCK_CLOEXEC);
                if (fd >= 0)
                {
                    batch[count++] = fd;
                    continue;
                }

                errno = Errno.Last;
                if (errno is Errno.EINTR or Errno.ECONNABORTED)
                {
                    continue;
                }

                break;
            }

            if (count > 0)
            {
                Volatile.Write(ref _accepted[index], _accepted[index] + count);
                onAccepted(batch[..count], this);
            }

            if (_stopped || count == batch.Length)
            {
                if (t_firstBytes is { Count: > 0 } pending)
                {
                    PollFirstBytes(handle, pending, sleep: false);
                }

                continue;
            }

            switch (errno)
            {
                case Errno.EAGAIN when t_firstBytes is { Count: > 0 } waiting:
                    PollFirstBytes(handle, waiting, sleep: true);
                    continue;
                case Errno.EAGAIN:
                    WaitForConnection(handle);
                    continue;
                case Errno.EMFILE or Errno.ENOBUFS:
                    // Out of fds or memory: back off instead of spinning; the kernel keeps the backlog.
                    onAcceptError(this, errno);
                    Thread.Sleep(100);
                    continue;
                default:
                    onAcceptError(this, errno);
                    return;
            }
        }
    }

    // Sleeps until the backlog has a connection (or Stop's shutdown() wakes it).
    private static void WaitForConnection(nint handle)
    {
        var poll = new Libc.PollFd { Fd = (int)handle, Events = Libc.POLLIN };
        _ = Libc.Poll(ref poll, 1, ReleaseCheckMilliseconds);
    }

    // The same with connections waiting for their first request: one poll for the backlog and their bytes.
    private static void PollFirstBytes(nint handle, FirstBytesWait waiting, bool sleep)
    {
        Span<Libc.PollFd> polls = stackalloc Libc.PollFd[1 + FirstBytesWait.Capacity];
        polls[0] = new Libc.PollFd { Fd = (int)handle, Events = Libc.POLLIN };
        var count = waiting.Count;
        var timeout = waiting.FillPoll(polls[1..], Environment.TickCount64);
        _ = Libc.Poll(ref polls[0], (nuint)(1 + count), sleep ? Math.Min(timeout, ReleaseCheckMilliseconds) : 0);
        waiting.Polled(polls[1..(1 + count)], Environment.TickCount64);
    }

    /// <summary>
    /// Stops accepting but leaves the socket listening for the supervisor it was handed to (upgrade): connections
    /// arriving meanwhile wait in the kernel's backlog for it. Returns once this process accepts no more.
    /// </summary>
    public void Release()
    {
        _released = true;
        _stopped = true;
        foreach (var thread in _acceptThreads ?? [])
        {
            thread.Join(TimeSpan.FromSeconds(5));
        }
    }

    // Stops accepting; connections still in the kernel backlog are reset when the socket closes.
    public void Stop()
    {
        if (_stopped)
        {
            return;
        }

        _stopped = true;
        if (_acceptThreads is null || _released)
        {
            // Shared with workers that accept on it: shutdown() would stop it under their feet (and make their
            // accept loops spin on EINVAL); they stop accepting when they unbind, and close() releases our copy.
            return;
        }

        // shutdown() wakes a thread sleeping in poll (accept4 then returns EINVAL); close() alone would not.
        foreach (var socket in _acceptSockets)
        {
            Libc.Shutdown(socket.SafeHandle.DangerousGetHandle(), Libc.SHUT_RDWR);
        }

        foreach (var thread in _acceptThreads)
        {
            if (!thread.Join(TimeSpan.FromSeconds(5)))
            {
                WakeAcceptWithConnect();
                thread.Join(TimeSpan.FromSeconds(5));
            }
        }
    }

    private void WakeAcceptWithConnect()
    {
        try
        {
            using var wake = BoundEndPoint is UnixDomainSocketEndPoint
                ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
                : new Socket(BoundEndPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            wake.Connect(BoundEndPoint);
        }
        catch (SocketException)
        {
        }
    }

    public void Dispose()
    {
        Stop();
        _group?.Dispose();
        if (_released)
        {
            // Disposing a Unix socket this process bound unlinks its path, which is the successor's now: the fd is
            // left for the process's exit to close.
            foreach (var socket in _acceptSockets)
            {
                HandedOverSockets.Keep(socket);
            }

            return;
        }

        foreach (var socket in _acceptSockets)
        {
            socket.Dispose();
        }

        if (BoundEndPoint is UnixDomainSocketEndPoint unix && !EndpointText.IsAbstract(unix))
        {
            TryDeleteSocketFile(unix.ToString());
        }
    }

    private static void TryDeleteSocketFile(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
