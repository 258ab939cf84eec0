using System.Net.Sockets;
using System.Text.Json;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;
using KestrelCluster.Supervisor.Runtime;

namespace KestrelCluster.Supervisor.Control;

// The cluster's control socket (0600 in the 0700 runtime folder; 0660 in a 0750 one for the --control-group).
// Only our uid, root and members of the control group get in (SO_PEERCRED, SO_PEERGROUPS), whatever the file
// modes say; one malformed request closes that peer only.
internal sealed class ControlServer : IDisposable
{
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(10);

    private readonly PrivateSocketListener _listener;
    private readonly Func<ControlRequest, Task<ControlResponse>> _execute;
    private readonly Action<PeerCredentials?, string> _refused;
    private readonly uint _userId = Libc.GetEffectiveUserId();
    private readonly uint? _controlGroup;

    public ControlServer(string path, Func<ControlRequest, Task<ControlResponse>> execute, Action<PeerCredentials?, string> refused, uint? controlGroup = null)
    {
        _execute = execute;
        _refused = refused;
        _controlGroup = controlGroup;
        _listener = new PrivateSocketListener(path, backlog: 16, controlGroup);
    }

    public void Start() => _listener.Start(ServeAsync);

    private async Task ServeAsync(Socket peer)
    {
        using var socket = new ChannelSocket(peer);
        PeerCredentials? credentials = null;
        try
        {
            credentials = PeerCredentials.Of(peer);
            if (!MayControl(peer, credentials.Value))
            {
                _refused(credentials, $"uid {credentials.Value.UserId} may not control this cluster");
                return;
            }

            var request = await ReceiveRequestAsync(socket).ConfigureAwait(false);
            var response = await _execute(request).ConfigureAwait(false);
            var bytes = JsonSerializer.SerializeToUtf8Bytes(response, ControlJson.Default.ControlResponse);
            ControlReply.Send(socket, bytes);
        }
        catch (Exception ex) when (ex is InvalidFrameException or JsonException or OperationCanceledException or SocketException)
        {
            _refused(credentials, $"bad control request ({ex.Message})");
        }
    }

    // Root may anyway (it can become us); an operator's group only when the cluster was started with one.
    private bool MayControl(Socket peer, PeerCredentials credentials)
        => credentials.UserId == _userId
            || credentials.UserId == 0
            || (_controlGroup is { } group && (credentials.GroupId == group || PeerCredentials.IsInGroup(peer, group)));

    private async Task<ControlRequest> ReceiveRequestAsync(ChannelSocket socket)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_listener.Stopping);
        timeout.CancelAfter(RequestTimeout);
        var buffer = new byte[FrameLimits.MaxFrameSize];
        var fds = new int[FrameLimits.MaxFdsPerFrame];
        var (status, length, fdCount) = await socket.ReceiveOneAsync(buffer, fds, timeout.Token).ConfigureAwait(false);
        ChannelSocket.CloseAll(fds.AsSpan(0, fdCount));
        return status switch
        {
            ReceiveStatus.Frame when fdCount == 0 => ParseRequest(buffer.AsSpan(0, length)),
            _ => throw new InvalidFrameException(status == ReceiveStatus.Closed ? "closed before a request" : "malformed request"),
        };
    }

    /// <summary>Decodes one request; throws InvalidFrameException or JsonException for anything else.</summary>
    internal static ControlRequest ParseRequest(ReadOnlySpan<byte> frame)
        => JsonSerializer.Deserialize(frame, ControlJson.Default.ControlRequest)
            ?? throw new InvalidFrameException("empty request");

    /// <summary>Lets answers already being sent (e.g. to `stop`) reach their clients.</summary>
    public Task FlushAsync(TimeSpan timeout) => _listener.FlushAsync(timeout);

    public void Dispose() => _listener.Dispose();
}
