using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;
using KestrelCluster.Supervisor.Runtime;

namespace KestrelCluster.Supervisor.Workers;

// Listens on the channel socket. A peer becomes a worker session only if it runs as our uid (SO_PEERCRED),
// presents the token of a worker we started and have not yet admitted, and is that worker's process
// (or one it started). Anyone else is logged and dropped; nothing a peer sends can stop the supervisor.
internal sealed class ChannelServer : IDisposable
{
    private static readonly TimeSpan HelloTimeout = TimeSpan.FromSeconds(10);

    private readonly PrivateSocketListener _listener;
    private readonly Func<string, Func<WorkerInstance, bool>, WorkerInstance?> _claimToken;
    private readonly Action<WorkerInstance, ChannelSocket, PeerCredentials> _admitted;
    private readonly Action<PeerCredentials?, string> _refused;
    private readonly uint _userId = Libc.GetEffectiveUserId();

    public ChannelServer(
        string path,
        Func<string, Func<WorkerInstance, bool>, WorkerInstance?> claimToken,
        Action<WorkerInstance, ChannelSocket, PeerCredentials> admitted,
        Action<PeerCredentials?, string> refused)
    {
        _claimToken = claimToken;
        _admitted = admitted;
        _refused = refused;
        _listener = new PrivateSocketListener(path, backlog: 128);
    }

    public void Start() => _listener.Start(AdmitAsync);

    private async Task AdmitAsync(Socket peerSocket)
    {
        var socket = new ChannelSocket(peerSocket);
        PeerCredentials? credentials = null;
        try
        {
            credentials = PeerCredentials.Of(peerSocket);
            if (credentials.Value.UserId != _userId)
            {
                Refuse(socket, credentials, $"uid {credentials.Value.UserId} is not the supervisor's");
                return;
            }

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_listener.Stopping);
            timeout.CancelAfter(HelloTimeout);
            var (pid, token) = await ReceiveHelloAsync(socket, timeout.Token).ConfigureAwait(false);
            var peerPid = credentials.Value.ProcessId;
            WorkerInstance? impersonated = null;
            // The token is claimed only by the worker's own process tree: a stranger holding a stolen token must
            // not use it up and lock the real worker out.
            var instance = _claimToken(token, candidate =>
            {
                var isWorker = pid == peerPid && ProcessTree.IsSameOrDescendant(peerPid, candidate.Pid);
                impersonated = isWorker ? null : candidate;
                return isWorker;
            });
            if (instance is null)
            {
                Refuse(socket, credentials, impersonated is null
                    ? "wrong or already used token"
                    : $"process {peerPid} is not worker {impersonated.SlotId} (pid {impersonated.Pid}) or one it started");
                return;
            }

            _admitted(instance, socket, credentials.Value);
        }
        catch (OperationCanceledException)
        {
            Refuse(socket, credentials, "no hello in time");
        }
        catch (InvalidFrameException ex)
        {
            Refuse(socket, credentials, ex.Message);
        }
        catch (SocketException ex)
        {
            Refuse(socket, credentials, ex.Message);
        }
    }

    private static async Task<(int Pid, string Token)> ReceiveHelloAsync(ChannelSocket socket, CancellationToken cancellationToken)
    {
        var buffer = new byte[FrameLimits.MaxFrameSize];
        var fds = new int[FrameLimits.MaxFdsPerFrame];
        var (status, length, fdCount) = await socket.ReceiveOneAsync(buffer, fds, cancellationToken).ConfigureAwait(false);
        if (fdCount > 0)
        {
            ChannelSocket.CloseAll(fds.AsSpan(0, fdCount));
            throw new InvalidFrameException("hello carried file descriptors");
        }

        if (status != ReceiveStatus.Frame)
        {
            throw new InvalidFrameException(status == ReceiveStatus.Closed ? "closed before hello" : "oversized hello");
        }

        // Anything but a hello throws InvalidFrameException.
        return HelloFrame.Read(buffer.AsSpan(0, length));
    }

    private void Refuse(ChannelSocket socket, PeerCredentials? credentials, string reason)
    {
        socket.Dispose();
        _refused(credentials, reason);
    }

    public static bool TokensEqual(string a, string b)
        => CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(a), Encoding.UTF8.GetBytes(b));

    public void Dispose() => _listener.Dispose();
}
