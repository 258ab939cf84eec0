using System.Net;
using System.Net.Sockets;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;

namespace KestrelCluster.Supervisor.Accept;

// One listening socket, bound once for all workers. A dedicated thread blocks in accept4 and hands each
// fd to the dispatcher: no allocation per connection, and it keeps up with the kernel on loopback.
internal sealed class ClusterListener : IDisposable
{
    private const int Backlog = 4096;

    private readonly Socket _socket;
    private Thread? _acceptThread;
    private volatile bool _stopped;

    private ClusterListener(int id, string requested, EndPoint boundEndPoint, Socket socket)
    {
        Id = id;
        Requested = requested;
        BoundEndPoint = boundEndPoint;
        BoundText = EndpointText.Format(boundEndPoint);
        _socket = socket;
    }

    public int Id { get; }

    // The endpoint as the app asked for it ("127.0.0.1:0"): workers asking for it again share this listener.
    public string Requested { get; }

    public EndPoint BoundEndPoint { get; }

    public string BoundText { get; }

    /// <summary>A listening socket someone else bound (systemd socket activation).</summary>
    public static ClusterListener Adopt(int id, Socket socket)
    {
        var bound = socket.LocalEndPoint!;
        return new ClusterListener(id, EndpointText.Format(bound), bound, socket);
    }

    public static ClusterListener Bind(int id, string requested, EndPoint endPoint)
    {
        Socket socket;
        if (endPoint is UnixDomainSocketEndPoint)
        {
            socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        }
        else
        {
            socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            if (endPoint is IPEndPoint { Address: var address } && address.Equals(IPAddress.IPv6Any))
            {
                // Like Kestrel: [::] serves IPv4 too.
                socket.DualMode = true;
            }
        }

        try
        {
            socket.Bind(endPoint);
            socket.Listen(Backlog);
            return new ClusterListener(id, requested, socket.LocalEndPoint!, socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public void Start(Action<int, ClusterListener> onAccepted, Action<ClusterListener, int> onAcceptError)
    {
        _acceptThread = new Thread(() => AcceptLoop(onAccepted, onAcceptError))
        {
            IsBackground = true,
            Name = $"kestrel-cluster accept {BoundText}",
        };
        _acceptThread.Start();
    }

    private void AcceptLoop(Action<int, ClusterListener> onAccepted, Action<ClusterListener, int> onAcceptError)
    {
        var handle = _socket.SafeHandle.DangerousGetHandle();
        while (!_stopped)
        {
            var fd = Libc.Accept4(handle, 0, 0, Libc.SOCK_CLOEXEC);
            if (fd >= 0)
            {
                onAccepted(fd, this);
                continue;
            }

            var errno = Errno.Last;
            if (_stopped)
            {
                return;
            }

            switch (errno)
            {
                case Errno.EINTR or Errno.ECONNABORTED or Errno.EAGAIN:
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

    // Stops accepting; connections still in the kernel backlog are reset when the socket closes.
    public void Stop()
    {
        if (_stopped)
        {
            return;
        }

        _stopped = true;
        // shutdown() wakes a thread blocked in accept4 (it returns EINVAL); close() alone would not.
        Libc.Shutdown(_socket.SafeHandle.DangerousGetHandle(), Libc.SHUT_RDWR);
        if (_acceptThread is not null && !_acceptThread.Join(TimeSpan.FromSeconds(5)))
        {
            WakeAcceptWithConnect();
            _acceptThread.Join(TimeSpan.FromSeconds(5));
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
        _socket.Dispose();
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
