using System.Net.Sockets;
using BenchmarkDotNet.Attributes;
using KestrelCluster.Protocol;

namespace KestrelCluster.Benchmarks;

// sendmsg(SCM_RIGHTS) of N fds in one frame over a SOCK_SEQPACKET pair, recvmsg on the other end, and the
// close of every received fd: what the supervisor and a worker pay per handed-off connection, minus TCP.
[MemoryDiagnoser]
public class FdHandoffBenchmarks
{
    private readonly byte[] _frame = new byte[ConnectionsFrame.MaxSize];
    private readonly byte[] _receiveBuffer = new byte[FrameLimits.MaxFrameSize];
    private readonly int[] _receivedFds = new int[FrameLimits.MaxFdsPerFrame];
    private string _directory = "";
    private ChannelSocket? _sender;
    private ChannelSocket? _receiver;
    private FileStream? _file;
    private int[] _fds = [];

    [Params(1, 16)]
    public int FdsPerFrame { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _directory = Directory.CreateTempSubdirectory("kc-bench-").FullName;
        var path = Path.Combine(_directory, "s");
        using var listener = ChannelSocket.CreateSocket();
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen();
        var client = ChannelSocket.CreateSocket();
        client.Connect(new UnixDomainSocketEndPoint(path));
        _sender = new ChannelSocket(client);
        _receiver = new ChannelSocket(listener.Accept());
        // Non-blocking receive, as in the supervisor and the transport.
        _receiver.Socket.Blocking = false;
        _file = File.OpenRead("/dev/null");
        _fds = Enumerable.Repeat((int)_file.SafeFileHandle.DangerousGetHandle(), FdsPerFrame).ToArray();
    }

    [Benchmark(OperationsPerInvoke = 16)]
    public int SendReceiveClose()
    {
        var received = 0;
        for (var sent = 0; sent < 16; sent += FdsPerFrame)
        {
            var writer = ConnectionsFrame.Begin(_frame, FdsPerFrame);
            for (var i = 0; i < FdsPerFrame; i++)
            {
                ConnectionsFrame.Add(ref writer, 0, sent + i);
            }

            if (_sender!.TrySend(writer.Written, _fds) != 0)
            {
                throw new InvalidOperationException("send failed");
            }

            if (_receiver!.TryReceive(_receiveBuffer, _receivedFds, out _, out var fdCount) != ReceiveStatus.Frame)
            {
                throw new InvalidOperationException("receive failed");
            }

            ChannelSocket.CloseAll(_receivedFds.AsSpan(0, fdCount));
            received += fdCount;
        }

        return received;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _sender?.Dispose();
        _receiver?.Dispose();
        _file?.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}
