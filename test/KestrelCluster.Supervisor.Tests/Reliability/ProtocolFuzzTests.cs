using System.Diagnostics;
using System.Net.Sockets;
using System.Text.Json;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;
using KestrelCluster.Supervisor.Accept;
using KestrelCluster.Supervisor.Control;
using KestrelCluster.Supervisor.Distribution;
using KestrelCluster.Supervisor.Workers;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Reliability;

// In-process fuzzing of everything that decodes what a peer sends: the supervisor's worker-frame handling, the
// channel hello, the control request, and the receive path with its fds. A bad input may only ever raise the
// decoder's own exception (which drops that peer); anything else would be a bug that escapes the peer's loop.
public sealed class ProtocolFuzzTests(ITestOutputHelper output)
{
    private const int Cases = 100_000;

    [Fact]
    public void WorkerSession_MalformedFrames_OnlyRejectedAsInvalidFrames()
    {
        using var pair = new SocketPair();
        var handler = new RecordingHandler();
        using var session = NewSession(pair, handler);
        // The session answers every Bind; read the answers so its sends never wait.
        using var drain = new CancellationTokenSource();
        var reader = Task.Run(() => DrainAsync(pair.Right, drain.Token));

        var fuzzer = new FrameFuzzer(seed: 7);
        var outcomes = Tally(fuzzer.NextWorkerFrame, frame => session.Handle(frame));

        drain.Cancel();
        AssertOnlyExpected(outcomes, "accepted", nameof(InvalidFrameException));
        Assert.True(outcomes.GetValueOrDefault("accepted") > 1000, "the fuzzer should also produce frames the session takes");
        Assert.True(outcomes.GetValueOrDefault(nameof(InvalidFrameException)) > 10_000);
    }

    [Fact]
    public void ChannelServer_MalformedHellos_OnlyRejectedAsInvalidFrames()
    {
        var fuzzer = new FrameFuzzer(seed: 11);
        var outcomes = Tally(fuzzer.NextHello, frame => HelloFrame.Read(frame));

        AssertOnlyExpected(outcomes, "accepted", nameof(InvalidFrameException));
        Assert.True(outcomes.GetValueOrDefault(nameof(InvalidFrameException)) > 10_000);
    }

    [Fact]
    public void ControlServer_MalformedRequests_OnlyRejectedAsJsonOrInvalidFrames()
    {
        var fuzzer = new FrameFuzzer(seed: 13);
        var outcomes = Tally(fuzzer.NextControlRequest, frame => ControlServer.ParseRequest(frame));

        AssertOnlyExpected(outcomes, "accepted", nameof(InvalidFrameException), nameof(JsonException));
        Assert.True(outcomes.GetValueOrDefault(nameof(JsonException)) > 10_000);
    }

    [Fact]
    public void EndpointText_RandomBindRequests_ParseOrRefuseWithoutThrowing()
    {
        var fuzzer = new FrameFuzzer(seed: 17);
        var outcomes = Tally(fuzzer.NextWorkerFrame, frame =>
        {
            var text = System.Text.Encoding.UTF8.GetString(frame.AsSpan(Math.Min(frame.Length, BindFrame.HeaderSize)));
            EndpointText.TryParse(text, out _);
        });

        AssertOnlyExpected(outcomes, "accepted");
    }

    // Whatever goes wrong while a frame is handled ends that session with the reason named, never silently.
    [Fact]
    public async Task WorkerSession_HandlerThrowsUnexpectedly_SessionClosesNamingTheException()
    {
        using var pair = new SocketPair();
        var handler = new RecordingHandler { ThrowOnBind = true };
        using var session = NewSession(pair, handler);
        session.Start();

        pair.Right.Send(BindFrame.Write(new byte[BindFrame.MaxSize], 1, "127.0.0.1:0"));

        var (reason, violation) = await handler.Closing.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Contains("InvalidOperationException", reason);
        Assert.True(violation);
    }

    // Found by the fuzzer: a Bind for a Unix path under 108 characters but over 108 bytes in UTF-8 threw out of
    // the worker's receive loop instead of answering "not an endpoint".
    [Theory]
    [InlineData("unix:/tmp/" + "ééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé")]
    [InlineData("unix:@" + "ééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé")]
    public void EndpointText_UnixPathOver108BytesInUtf8_IsRefusedNotThrown(string text)
    {
        Assert.True(text.Length < 108 + 5);
        Assert.False(EndpointText.TryParse(text, out var endPoint));
        Assert.Null(endPoint);
    }

    // The receive path with real fds: fds on frames where none belong, more fds than a frame may carry,
    // oversized and empty frames. Every fd that reaches the supervisor's side must be closed again.
    [Fact]
    public void ChannelSocket_RandomFramesWithFds_EveryReceivedFdClosedAndNoHang()
    {
        const int Frames = 5_000;
        using var pair = new SocketPair();
        using var files = new TestFiles();
        var passable = files.Open(40);
        var sender = new ChannelSocket(pair.Left);
        var receiver = new ChannelSocket(pair.Right);
        var random = new Random(19);
        var buffer = new byte[FrameLimits.MaxFrameSize];
        var fds = new int[FrameLimits.MaxFdsPerFrame];
        var statuses = new Dictionary<string, int>();
        var stopwatch = Stopwatch.StartNew();

        for (var i = 0; i < Frames; i++)
        {
            var length = random.Next(5) == 0 ? random.Next(FrameLimits.MaxFrameSize, FrameLimits.MaxFrameSize + 16_000) : random.Next(0, 200);
            var frame = new byte[length];
            random.NextBytes(frame);
            var fdCount = random.Next(3) == 0 ? 0 : random.Next(1, 33);
            var toPass = passable.Take(fdCount).Select(f => f.Fd).ToArray();
            Assert.Equal(0, SendRaw(pair.Left, frame, toPass));

            var status = receiver.TryReceive(buffer, fds, out var received, out var receivedFds);
            // What the supervisor does with fds it did not ask for: close them.
            ChannelSocket.CloseAll(fds.AsSpan(0, receivedFds));
            var key = $"{status}{(status == ReceiveStatus.Frame && receivedFds > 0 ? " with fds" : "")}";
            statuses[key] = statuses.GetValueOrDefault(key) + 1;
            if (fdCount > FrameLimits.MaxFdsPerFrame || length > FrameLimits.MaxFrameSize)
            {
                Assert.Equal(ReceiveStatus.Malformed, status);
            }
            else if (status == ReceiveStatus.Frame)
            {
                Assert.Equal(length, received);
                Assert.Equal(fdCount, receivedFds);
            }
        }

        output.WriteLine($"{Frames} frames in {stopwatch.ElapsedMilliseconds} ms: {string.Join(", ", statuses.Select(s => $"{s.Key} {s.Value}"))}");
        Assert.Equal(ReceiveStatus.WouldBlock, receiver.TryReceive(buffer, fds, out _, out _));
        // Counted by target, not in total: other tests' sockets may close in the background meanwhile.
        Assert.Equal(passable.Count, files.OpenFdsToThem());
        Assert.All(passable, f => Assert.True(f.IsOpen, $"{f} was closed on the sender's side"));
        GC.KeepAlive(sender);
    }

    // sendmsg with any number of fds (ChannelSocket refuses more than a frame may carry, a hostile peer would not).
    private static unsafe int SendRaw(Socket socket, byte[] frame, int[] fds)
    {
        var controlLength = fds.Length == 0 ? 0 : Libc.ControlMessageSpace(fds.Length * sizeof(int));
        var control = stackalloc byte[Math.Max(controlLength, 1)];
        fixed (byte* data = frame)
        {
            var iov = new Libc.IoVec { Base = data, Length = (nuint)frame.Length };
            var header = new Libc.MessageHeader { Iov = &iov, IovLength = 1 };
            if (fds.Length > 0)
            {
                Libc.AttachRights(&header, control, fds);
            }

            return Libc.SendMsg(socket.SafeHandle.DangerousGetHandle(), &header, Libc.MSG_NOSIGNAL) >= 0 ? 0 : Errno.Last;
        }
    }

    // Runs the decoder on Cases fuzzed frames and counts what happened to each: "accepted" or the exception's type.
    private Dictionary<string, int> Tally(Func<byte[]> next, Action<byte[]> decode)
    {
        var outcomes = new Dictionary<string, int>();
        for (var i = 0; i < Cases; i++)
        {
            var frame = next();
            var outcome = Outcome(() => decode(frame), frame);
            outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
        }

        Report(outcomes);
        return outcomes;
    }

    private static WorkerSession NewSession(SocketPair pair, RecordingHandler handler) => new(
        new WorkerInstance(new WorkerLaunch(0, 1, "not-a-real-token"), 0),
        new ChannelSocket(pair.Left),
        new PeerCredentials(Environment.ProcessId, 0, 0),
        new Dispatcher(TimeSpan.FromSeconds(5)),
        handler);

    private static string Outcome(Action decode, byte[] frame)
    {
        try
        {
            decode();
            return "accepted";
        }
        catch (Exception ex) when (ex is InvalidFrameException or JsonException)
        {
            return ex.GetType().Name;
        }
        catch (Exception ex)
        {
            return $"{ex.GetType().Name}: {ex.Message} on [{Convert.ToHexString(frame.AsSpan(0, Math.Min(frame.Length, 48)))}{(frame.Length > 48 ? "…" : "")}] ({frame.Length} bytes)";
        }
    }

    private void Report(Dictionary<string, int> outcomes)
        => output.WriteLine(string.Join("\n", outcomes.OrderByDescending(o => o.Value).Select(o => $"{o.Value,7} {o.Key}")));

    private static void AssertOnlyExpected(Dictionary<string, int> outcomes, params string[] expected)
    {
        var unexpected = outcomes.Keys.Where(k => !expected.Contains(k)).ToList();
        Assert.True(unexpected.Count == 0, "unexpected outcomes:\n" + string.Join("\n", unexpected.Take(10)));
    }

    private static async Task DrainAsync(Socket socket, CancellationToken cancellationToken)
    {
        var buffer = new byte[FrameLimits.MaxFrameSize];
        try
        {
            while (await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken) > 0)
            {
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private sealed class RecordingHandler : IWorkerSessionHandler
    {
        public int Binds { get; private set; }

        public bool ThrowOnBind { get; init; }

        public TaskCompletionSource<(string Reason, bool Violation)> Closing { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public BindOutcome Bind(WorkerSession session, string requested)
        {
            Binds++;
            if (ThrowOnBind)
            {
                throw new InvalidOperationException("a fault in the supervisor's own code");
            }

            // The supervisor's registry parses the endpoint first (and binds nothing here).
            return EndpointText.TryParse(requested, out _)
                ? new BindOutcome(null, SocketError.AccessDenied, "fuzzing binds nothing")
                : new BindOutcome(null, SocketError.InvalidArgument, "not an endpoint");
        }

        public void Ready(WorkerSession session)
        {
        }

        public void Closed(WorkerSession session, string reason, bool violation) => Closing.TrySetResult((reason, violation));

        // What the supervisor does with one: log it as text, or relay it to the other workers.
        public void Message(WorkerSession session, int target, byte[] json)
        {
            _ = System.Text.Encoding.UTF8.GetString(json);
            session.SendMessage(session.Id, json);
        }

        public void RelayHub(WorkerSession session, int target, ReadOnlySpan<byte> payload)
        {
        }
    }
}
