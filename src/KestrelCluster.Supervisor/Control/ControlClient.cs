using System.Net.Sockets;
using System.Text.Json;
using KestrelCluster.Protocol;

namespace KestrelCluster.Supervisor.Control;

// The CLI's side: finds the cluster's control socket, sends one request, waits for the answer.
internal static class ControlClient
{
    public static Task<ControlResponse> SendAsync(string? name, uint? owner, ControlRequest request, TimeSpan timeout)
        => SendToAsync(ClusterLocator.FindControlSocket(name, owner), request, timeout);

    /// <summary>Sends one request to the control socket at <paramref name="path"/>; every failure is a ControlRequestException.</summary>
    public static async Task<ControlResponse> SendToAsync(string path, ControlRequest request, TimeSpan timeout)
    {
        using var socket = new ChannelSocket(ChannelSocket.CreateSocket());
        using var cancellation = new CancellationTokenSource(timeout);
        // Connected, then closed before any answer: the supervisor refuses this uid (or is exiting).
        ControlRequestException ClosedWithoutAnswer() => new(
            $"the cluster closed the control connection without answering ({path}); it answers only its own user, root and members of its --control-group.");
        try
        {
            await socket.Socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellation.Token).ConfigureAwait(false);
            try
            {
                socket.Send(JsonSerializer.SerializeToUtf8Bytes(request, ControlJson.Default.ControlRequest));
            }
            catch (SocketException ex) when (ex.SocketErrorCode is SocketError.Shutdown or SocketError.ConnectionReset)
            {
                throw ClosedWithoutAnswer();
            }

            var reply = await ControlReply.ReceiveAsync(socket, cancellation.Token).ConfigureAwait(false) ?? throw ClosedWithoutAnswer();
            return JsonSerializer.Deserialize(reply, ControlJson.Default.ControlResponse)
                ?? throw new ControlRequestException("the cluster sent an empty answer.");
        }
        catch (Exception ex) when (ex is JsonException or InvalidFrameException)
        {
            // e.g. a supervisor of another version: one clear line, never a half-printed list.
            throw new ControlRequestException($"the cluster's answer to '{request.Command}' could not be read: {ex.Message}");
        }
        catch (SocketException ex)
        {
            throw new ControlRequestException($"cannot reach the cluster's control socket {path}: {ex.Message}");
        }
        catch (OperationCanceledException)
        {
            throw new ControlRequestException($"the cluster did not answer '{request.Command}' within {timeout.TotalSeconds:0} s.");
        }
    }
}
