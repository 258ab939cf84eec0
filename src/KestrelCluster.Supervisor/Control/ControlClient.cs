using System.Net.Sockets;
using System.Text.Json;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;
using KestrelCluster.Supervisor.Cli;
using KestrelCluster.Supervisor.Hosting;

namespace KestrelCluster.Supervisor.Control;

// The CLI's side: finds the cluster's control socket, sends one request, waits for the answer.
internal static class ControlClient
{
    public static async Task<ControlResponse> SendAsync(string? name, ControlRequest request, TimeSpan timeout)
    {
        var path = RuntimeDirectory.FindControlSocket(name);
        using var socket = new ChannelSocket(ChannelSocket.CreateSocket());
        using var cancellation = new CancellationTokenSource(timeout);
        try
        {
            await socket.Socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellation.Token).ConfigureAwait(false);
            socket.Send(JsonSerializer.SerializeToUtf8Bytes(request, ControlJson.Default.ControlRequest));
            var buffer = new byte[FrameLimits.MaxFrameSize];
            var fds = new int[FrameLimits.MaxFdsPerFrame];
            var (status, length, fdCount) = await socket.ReceiveOneAsync(buffer, fds, cancellation.Token).ConfigureAwait(false);
            ChannelSocket.CloseAll(fds.AsSpan(0, fdCount));
            return status == ReceiveStatus.Frame
                ? JsonSerializer.Deserialize(buffer.AsSpan(0, length), ControlJson.Default.ControlResponse) ?? throw new CommandLineException("the cluster sent an empty answer.")
                : throw new CommandLineException($"the cluster closed the control connection without answering ({path}).");
        }
        catch (SocketException ex)
        {
            throw new CommandLineException($"cannot reach the cluster's control socket {path}: {ex.Message}");
        }
        catch (OperationCanceledException)
        {
            throw new CommandLineException($"the cluster did not answer '{request.Command}' within {timeout.TotalSeconds:0} s.");
        }
    }
}
