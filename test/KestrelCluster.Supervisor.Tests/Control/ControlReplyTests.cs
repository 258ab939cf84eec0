using System.Net.Sockets;
using System.Text;
using KestrelCluster.Protocol;
using KestrelCluster.Supervisor.Control;
using KestrelCluster.Tests.Infrastructure;

namespace KestrelCluster.Tests.Control;

// The control socket's answers over a real socket: any size arrives whole, and what cannot be read is one
// clear error (the CLI prints ControlRequestException as a single "kestrel-cluster: error:" line).
public sealed class ControlReplyTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task SendToAsync_ReplyFarOverOneFrame_ArrivesWhole()
    {
        using var folder = new TemporaryFolder();
        var path = Path.Combine(folder.Path, "control.sock");
        var rows = Enumerable.Range(0, 5000)
            .Select(i => new WorkerRow(i, 100_000 + i, 3, "ready", 12.5 + i, i % 7, i % 13, 1_000_000L * i, 0.5, 80L << 20))
            .ToList();
        var refusals = new List<string>();
        using var server = new ControlServer(path, _ => Task.FromResult(ControlResponse.Success("listed", rows)), (_, reason) => refusals.Add(reason));
        server.Start();

        var response = await ControlClient.SendToAsync(path, new ControlRequest(ControlCommands.List), Timeout);

        Assert.True(response.Ok);
        Assert.Equal(rows, response.Workers!);
        Assert.Empty(refusals);
    }

    [Fact]
    public async Task SendToAsync_ReplyThatNeverEnds_StopsAtTheCapWithAClearError()
    {
        using var folder = new TemporaryFolder();
        var path = Path.Combine(folder.Path, "control.sock");
        var server = ServeOnceAsync(path, socket =>
        {
            // Continuation frames for ever: the client must give up at its cap, not grow without bound.
            var frame = new byte[FrameLimits.MaxFrameSize];
            Array.Fill(frame, (byte)' ');
            frame[0] = ControlReply.MoreFollows;
            for (var sent = 0L; sent < 1L << 30; sent += frame.Length)
            {
                socket.Send(frame);
            }
        });

        var error = await Assert.ThrowsAsync<ControlRequestException>(() => ControlClient.SendToAsync(path, new ControlRequest(ControlCommands.List), Timeout));

        Assert.Contains("MiB", error.Message);
        await Assert.ThrowsAnyAsync<SocketException>(() => server.WaitAsync(Timeout));
    }

    public static TheoryData<string> UnreadableReplies => ["{\"ok\":true,\"message\":\"cut he", "not json", "null"];

    [Theory]
    [MemberData(nameof(UnreadableReplies))]
    public async Task SendToAsync_UnreadableReply_IsOneClearError(string reply)
    {
        using var folder = new TemporaryFolder();
        var path = Path.Combine(folder.Path, "control.sock");
        var server = ServeOnceAsync(path, socket => socket.Send(Encoding.UTF8.GetBytes(reply)));

        var error = await Assert.ThrowsAsync<ControlRequestException>(() => ControlClient.SendToAsync(path, new ControlRequest(ControlCommands.List), Timeout));

        Assert.Contains("answer", error.Message);
        await server.WaitAsync(Timeout);
    }

    // A stand-in supervisor: accepts one client, reads its request, then answers with whatever `answer` sends.
    private static Task ServeOnceAsync(string path, Action<ChannelSocket> answer)
    {
        var listener = ChannelSocket.CreateSocket();
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        return Task.Run(async () =>
        {
            using var _ = listener;
            using var socket = new ChannelSocket(await listener.AcceptAsync().WaitAsync(Timeout));
            var (status, _, _) = await socket.ReceiveOneAsync(new byte[FrameLimits.MaxFrameSize], new int[FrameLimits.MaxFdsPerFrame], new CancellationTokenSource(Timeout).Token);
            Assert.Equal(ReceiveStatus.Frame, status);
            answer(socket);
        });
    }
}
