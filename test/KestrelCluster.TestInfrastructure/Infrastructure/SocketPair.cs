using System.Net.Sockets;

namespace KestrelCluster.Tests.Infrastructure;

/// <summary>Two connected SOCK_SEQPACKET Unix sockets, like a channel's two ends (made by listen/connect, no socketpair in .NET).</summary>
internal sealed class SocketPair : IDisposable
{
    private readonly string _directory = TestPaths.NewTempDirectory();

    public SocketPair()
    {
        using var listener = NewSocket();
        var endPoint = new UnixDomainSocketEndPoint(Path.Combine(_directory, "pair.sock"));
        listener.Bind(endPoint);
        listener.Listen(1);
        Left = NewSocket();
        Left.Connect(endPoint);
        Right = listener.Accept();
    }

    public Socket Left { get; }

    public Socket Right { get; }

    private static Socket NewSocket() => new(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);

    public void Dispose()
    {
        Left.Dispose();
        Right.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}
