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
            while (true)
            {
                await socket.WaitReadableAsync(cancellation.Token).ConfigureAwait(false);
                var status = socket.TryReceive(buffer, fds, out var length, out var fdCount);
                ChannelSocket.CloseAll(fds.AsSpan(0, fdCount));
                switch (status)
                {
                    case ReceiveStatus.WouldBlock:
                        continue;
                    case ReceiveStatus.Frame:
                        return JsonSerializer.Deserialize(buffer.AsSpan(0, length), ControlJson.Default.ControlResponse)
                            ?? throw new CommandLineException("the cluster sent an empty answer.");
                    default:
                        throw new CommandLineException($"the cluster closed the control connection without answering ({path}).");
                }
            }
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
