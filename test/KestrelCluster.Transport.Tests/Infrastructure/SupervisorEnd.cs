using System.Net.Sockets;
using KestrelCluster.Protocol;
using KestrelCluster.Transport;
using Microsoft.Extensions.Hosting.Internal;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace KestrelCluster.Tests.Infrastructure;

/// <summary>
/// The supervisor's end of one worker's channel, played in this process: a SOCK_SEQPACKET socket in a temporary folder
/// that a real <see cref="SupervisorChannel"/> joins (Hello, Welcome, Ready). Passes fds in Connections frames and
/// records the Acks and Unbind frames the worker sends back.
/// </summary>
internal sealed class SupervisorEnd : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    // Sequence numbers of the markers SyncAsync passes; the tests' own connections count up from small numbers.
    private const long FirstMarker = long.MaxValue / 2;

    private readonly TemporaryFolder _folder = new();
    private readonly Socket _listener = new(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
    private readonly byte[] _buffer = new byte[FrameLimits.MaxFrameSize];
    private readonly int[] _fds = new int[FrameLimits.MaxFdsPerFrame];
    private readonly List<IReadOnlyList<(long Sequence, bool Accepted)>> _acksFrames = [];
    private readonly List<int> _unbound = [];
    private readonly HashSet<long> _markersAnswered = [];
    private ChannelSocket? _peer;
    private long _nextMarker = FirstMarker;

    private SupervisorEnd()
    {
        _listener.Bind(new UnixDomainSocketEndPoint(Path.Combine(_folder.Path, "channel.sock")));
        _listener.Listen(1);
    }

    public string Folder => _folder.Path;

    public SupervisorChannel Channel { get; private set; } = null!;

    /// <summary>Every Acks frame read so far, in order (markers left out).</summary>
    public IReadOnlyList<IReadOnlyList<(long Sequence, bool Accepted)>> AcksFrames => _acksFrames;

    public IEnumerable<(long Sequence, bool Accepted)> Acks => _acksFrames.SelectMany(f => f);

    /// <summary>Listener ids of the Unbind frames read so far.</summary>
    public IReadOnlyList<int> Unbound => _unbound;

    public static async Task<SupervisorEnd> StartAsync()
    {
        var end = new SupervisorEnd();
        try
        {
            await end.JoinAsync();
            return end;
        }
        catch
        {
            await end.DisposeAsync();
            throw;
        }
    }

    /// <summary>One Connections frame (at most 16): each fd with its sequence number, all for one listener.</summary>
    public void Pass(int listenerId, IReadOnlyList<(long Sequence, int Fd)> connections)
    {
        var frame = new byte[ConnectionsFrame.SizeFor(connections.Count)];
        var writer = ConnectionsFrame.Begin(frame, connections.Count);
        foreach (var (sequence, _) in connections)
        {
            ConnectionsFrame.Add(ref writer, listenerId, sequence);
        }

        _peer!.Send(writer.Written, [.. connections.Select(c => c.Fd)]);
    }

    /// <summary>
    /// Returns once the worker has handled every frame passed before: its channel reads frames in order and refuses a
    /// connection for a listener it does not have at once, so the refusal of such a marker comes after all of them.
    /// </summary>
    public async Task SyncAsync()
    {
        var marker = _nextMarker++;
        using (var devNull = File.OpenHandle("/dev/null"))
        {
            Pass(listenerId: -1, [(marker, (int)devNull.DangerousGetHandle())]);
        }

        using var timeout = new CancellationTokenSource(Timeout);
        while (!_markersAnswered.Contains(marker))
        {
            await _peer!.WaitReadableAsync(timeout.Token);
            ReadAvailable();
        }
    }

    /// <summary>Reads until the worker has acknowledged <paramref name="count"/> connections in all.</summary>
    public async Task<IReadOnlyList<(long Sequence, bool Accepted)>> AcksAsync(int count)
    {
        using var timeout = new CancellationTokenSource(Timeout);
        ReadAvailable();
        while (Acks.Count() < count)
        {
            await _peer!.WaitReadableAsync(timeout.Token);
            ReadAvailable();
        }

        return [.. Acks];
    }

    /// <summary>Reads every frame the worker has sent by now, without waiting.</summary>
    public void ReadAvailable()
    {
        while (true)
        {
            var status = _peer!.TryReceive(_buffer, _fds, out var length, out var fdCount);
            ChannelSocket.CloseAll(_fds.AsSpan(0, fdCount));
            if (status == ReceiveStatus.WouldBlock)
            {
                return;
            }

            Assert.Equal(ReceiveStatus.Frame, status);
            Record(_buffer.AsSpan(0, length));
        }
    }

    private void Record(ReadOnlySpan<byte> frame)
    {
        switch (FrameReader.TypeOf(frame))
        {
            case FrameType.Acks:
                var reader = AcksFrame.Read(frame, out var count);
                var acks = new List<(long Sequence, bool Accepted)>();
                for (var i = 0; i < count; i++)
                {
                    acks.Add(AcksFrame.Next(ref reader));
                }

                reader.EnsureEnd();

                if (acks.Any(a => a.Sequence >= FirstMarker))
                {
                    _markersAnswered.UnionWith(acks.Select(a => a.Sequence));
                }
                else
                {
                    _acksFrames.Add(acks);
                }

                break;
            case FrameType.Unbind:
                _unbound.Add(UnbindFrame.Read(frame));
                break;
            default:
                // Status (every second) and the like: not what these tests look at.
                break;
        }
    }

    private async Task JoinAsync()
    {
        using var timeout = new CancellationTokenSource(Timeout);
        Channel = NewChannel(Path.Combine(_folder.Path, "channel.sock"));
        var ready = Channel.ReportReadyAsync(WorkerFeatures.None, timeout.Token);
        _peer = new ChannelSocket(await _listener.AcceptAsync(timeout.Token));
        Assert.Equal(FrameType.Hello, await ReceiveTypeAsync(timeout.Token));
        _peer.Send(WelcomeFrame.Write(new byte[WelcomeFrame.Size], workerId: 0, generation: 1));
        await ready.WaitAsync(timeout.Token);
        Assert.Equal(FrameType.Ready, await ReceiveTypeAsync(timeout.Token));
    }

    private async Task<FrameType> ReceiveTypeAsync(CancellationToken cancellationToken)
    {
        var (status, length, fdCount) = await _peer!.ReceiveOneAsync(_buffer, _fds, cancellationToken);
        ChannelSocket.CloseAll(_fds.AsSpan(0, fdCount));
        Assert.Equal(ReceiveStatus.Frame, status);
        return FrameReader.TypeOf(_buffer.AsSpan(0, length));
    }

    // A worker finds its supervisor through the environment. The variable is process-wide: this assembly runs one test at a time.
    private static SupervisorChannel NewChannel(string path)
    {
        var options = Options.Create(new ClusterTransportOptions());
        var lifetime = new ApplicationLifetime(NullLogger<ApplicationLifetime>.Instance);
        var drain = new ConnectionDrain(options, lifetime, NullLogger<ConnectionDrain>.Instance);
        Environment.SetEnvironmentVariable(ClusterEnvironment.Channel, path);
        try
        {
            return new SupervisorChannel(options, lifetime, drain, NullLogger<SupervisorChannel>.Instance);
        }
        finally
        {
            Environment.SetEnvironmentVariable(ClusterEnvironment.Channel, null);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Channel is not null)
        {
            await Channel.DisposeAsync().AsTask().WaitAsync(Timeout);
        }

        _peer?.Dispose();
        _listener.Dispose();
        _folder.Dispose();
    }
}
