using System.Globalization;
using System.Net.Sockets;
using KestrelCluster.Protocol;

namespace KestrelCluster.Supervisor.Upgrade;

// The new supervisor's side of an upgrade: it connects to the running one before anything else, receives every
// listening socket (serving them only once it takes over), reports its workers ready (or why it failed), and
// afterwards dispatches the connections the old one accepted but could not hand to a worker of its own.
internal sealed class UpgradeHandover : IDisposable
{
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(30);

    private readonly ChannelSocket _socket;
    private readonly int _oldPid;
    private int _failedSent;

    private UpgradeHandover(ChannelSocket socket, string clusterName, IReadOnlyList<(IReadOnlyList<Socket> Sockets, string Requested)> listeners, int generation)
    {
        _socket = socket;
        _oldPid = Interop.PeerCredentials.Of(socket.Socket).ProcessId;
        ClusterName = clusterName;
        Listeners = listeners;
        Generation = generation;
    }

    public string ClusterName { get; }

    /// <summary>The old supervisor's listening sockets (several for an endpoint with accept threads), with the endpoint each was bound for.</summary>
    public IReadOnlyList<(IReadOnlyList<Socket> Sockets, string Requested)> Listeners { get; }

    /// <summary>The first generation of this supervisor's workers (the old one's + 1).</summary>
    public int Generation { get; }

    public bool TookOver { get; private set; }

    /// <summary>Null unless this process was started by an upgrade. Throws IOException when the handover fails.</summary>
    public static async Task<UpgradeHandover?> ConnectFromEnvironmentAsync()
    {
        var path = Environment.GetEnvironmentVariable(UpgradeEnvironment.Socket);
        var token = Environment.GetEnvironmentVariable(UpgradeEnvironment.Token);
        var name = Environment.GetEnvironmentVariable(UpgradeEnvironment.Name);
        foreach (var variable in UpgradeEnvironment.All)
        {
            Environment.SetEnvironmentVariable(variable, null);
        }

        if (string.IsNullOrEmpty(path) || string.IsNullOrEmpty(token) || string.IsNullOrEmpty(name))
        {
            return null;
        }

        var socket = new ChannelSocket(ChannelSocket.CreateSocket());
        var listeners = new List<(IReadOnlyList<Socket>, string)>();
        try
        {
            using var timeout = new CancellationTokenSource(ConnectTimeout);
            await socket.Socket.ConnectAsync(new UnixDomainSocketEndPoint(path), timeout.Token).ConfigureAwait(false);
            socket.Send(UpgradeFrames.Encode(UpgradeFrame.Hello, token));
            var buffer = new byte[FrameLimits.MaxFrameSize];
            var fds = new int[FrameLimits.MaxFdsPerFrame];
            while (true)
            {
                var (status, length, fdCount) = await socket.ReceiveOneAsync(buffer, fds, timeout.Token).ConfigureAwait(false);
                if (status != ReceiveStatus.Frame)
                {
                    ChannelSocket.CloseAll(fds.AsSpan(0, fdCount));
                    throw new IOException("the running supervisor closed the upgrade connection");
                }

                var (type, text) = UpgradeFrames.Decode(buffer.AsSpan(0, length));
                if (type == UpgradeFrame.Listener && fdCount >= 1)
                {
                    listeners.Add(([.. fds.Take(fdCount).Select(fd => new Socket(new SafeSocketHandle(fd, ownsHandle: true)))], text));
                    continue;
                }

                ChannelSocket.CloseAll(fds.AsSpan(0, fdCount));
                if (type == UpgradeFrame.ListenersDone && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var generation))
                {
                    return new UpgradeHandover(socket, name, listeners, generation);
                }

                throw new IOException($"unexpected upgrade message {type}");
            }
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException or InvalidFrameException)
        {
            foreach (var listener in listeners.SelectMany(l => l.Item1))
            {
                listener.Dispose();
            }

            socket.Dispose();
            throw new IOException($"cannot take the listening sockets from the running supervisor ({path}): {ex.Message}", ex);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Reads what the old supervisor sends after the listeners: TakeOver (or its end: then nobody else serves), then
    /// connections for us to dispatch. Runs until the old supervisor closes the connection.
    /// </summary>
    public async Task ReceiveAsync(Action takeOver, Action<string, int[]> connections, CancellationToken cancellationToken)
    {
        var buffer = new byte[FrameLimits.MaxFrameSize];
        var fds = new int[FrameLimits.MaxFdsPerFrame];
        try
        {
            while (true)
            {
                var (status, length, fdCount) = await _socket.ReceiveOneAsync(buffer, fds, cancellationToken).ConfigureAwait(false);
                if (status != ReceiveStatus.Frame)
                {
                    ChannelSocket.CloseAll(fds.AsSpan(0, fdCount));
                    break;
                }

                var (type, text) = UpgradeFrames.Decode(buffer.AsSpan(0, length));
                if (type == UpgradeFrame.Connections)
                {
                    connections(text, fds[..fdCount]);
                    continue;
                }

                ChannelSocket.CloseAll(fds.AsSpan(0, fdCount));
                if (type == UpgradeFrame.TakeOver)
                {
                    takeOver();
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException or InvalidFrameException)
        {
        }

        // The old supervisor died (a crash, SIGKILL): this one serves now. One that is still running closed the
        // connection on purpose (the upgrade failed, and it stops us).
        if (TookOver || await HasExitedAsync(_oldPid).ConfigureAwait(false))
        {
            takeOver();
        }
    }

    // Its fds close a moment before it shows as a zombie: look for a bounded while.
    private static async Task<bool> HasExitedAsync(int pid)
    {
        for (var i = 0; i < 50; i++)
        {
            if (Interop.ProcStat.Read(pid) is not { IsRunning: true })
            {
                return true;
            }

            await Task.Delay(20, CancellationToken.None).ConfigureAwait(false);
        }

        return false;
    }

    public void SendReady() => TrySend(UpgradeFrame.Ready);

    public void SendTookOver()
    {
        TookOver = true;
        TrySend(UpgradeFrame.TookOver);
    }

    /// <summary>Tells the running supervisor why this one cannot serve (once; it keeps serving and `upgrade` fails).</summary>
    public void SendFailed(string reason)
    {
        if (!TookOver && Interlocked.Exchange(ref _failedSent, 1) == 0)
        {
            TrySend(UpgradeFrame.Failed, reason);
        }
    }

    private void TrySend(UpgradeFrame type, string text = "")
    {
        try
        {
            _socket.Send(UpgradeFrames.Encode(type, text));
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }
    }

    public void Dispose() => _socket.Dispose();
}
