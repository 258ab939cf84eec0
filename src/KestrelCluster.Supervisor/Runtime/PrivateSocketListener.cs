using System.Net.Sockets;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;

namespace KestrelCluster.Supervisor.Runtime;

// A SOCK_SEQPACKET listening socket for the supervisor's user alone (0600, inside the 0700 runtime folder), or
// also for one group (0660, group-owned); peers are still checked with SO_PEERCRED by whoever serves them. Each
// accepted peer is served on its own task, so one slow or hostile peer never holds up the next. The channel and
// the control socket use it.
internal sealed class PrivateSocketListener : IDisposable
{
    private readonly Socket _socket = ChannelSocket.CreateSocket();
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _inFlight = [];

    public PrivateSocketListener(string path, int backlog, uint? group = null)
    {
        _socket.Bind(new UnixDomainSocketEndPoint(path));
        const UnixFileMode owner = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        File.SetUnixFileMode(path, group is null ? owner : owner | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
        if (group is { } gid && Libc.Chown(path, Libc.Unchanged, gid) != 0)
        {
            var errno = Errno.Last;
            _socket.Dispose();
            throw new RuntimeFolderException($"cannot give the control socket {path} to group {gid} (errno {errno}).");
        }

        _socket.Listen(backlog);
    }

    /// <summary>Cancelled when the listener is disposed: bounds what serving a peer may wait for.</summary>
    public CancellationToken Stopping => _stopping.Token;

    public void Start(Func<Socket, Task> serve) => _ = Task.Run(() => AcceptLoopAsync(serve));

    private async Task AcceptLoopAsync(Func<Socket, Task> serve)
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket peer;
            try
            {
                peer = await _socket.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                continue;
            }

            lock (_inFlight)
            {
                _inFlight.RemoveAll(t => t.IsCompleted);
                _inFlight.Add(Task.Run(() => serve(peer)));
            }
        }
    }

    /// <summary>Waits (bounded) for the peers being served, e.g. so an answer to `stop` reaches its client.</summary>
    public async Task FlushAsync(TimeSpan timeout)
    {
        Task[] pending;
        lock (_inFlight)
        {
            pending = [.. _inFlight];
        }

        try
        {
            await Task.WhenAll(pending).WaitAsync(timeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _socket.Dispose();
    }
}
