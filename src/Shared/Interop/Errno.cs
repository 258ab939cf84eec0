using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace KestrelCluster.Interop;

// Linux errno values we act on, and their mapping to SocketError, kept in one place.
internal static class Errno
{
    internal const int EINTR = 4;
    internal const int EBADF = 9;
    internal const int EAGAIN = 11;
    internal const int EACCES = 13;
    internal const int EINVAL = 22;
    internal const int EMFILE = 24;
    internal const int EPIPE = 32;
    internal const int ECONNABORTED = 103;
    internal const int ECONNRESET = 104;
    internal const int ENOBUFS = 105;
    internal const int ENOTCONN = 107;

    internal static int Last => Marshal.GetLastPInvokeError();

    internal static SocketError ToSocketError(int errno) => errno switch
    {
        EAGAIN => SocketError.WouldBlock,
        EINTR => SocketError.Interrupted,
        EPIPE => SocketError.Shutdown,
        ECONNRESET => SocketError.ConnectionReset,
        ECONNABORTED => SocketError.ConnectionAborted,
        ENOTCONN => SocketError.NotConnected,
        EBADF => SocketError.OperationAborted,
        EINVAL => SocketError.InvalidArgument,
        EACCES => SocketError.AccessDenied,
        ENOBUFS => SocketError.NoBufferSpaceAvailable,
        EMFILE => SocketError.TooManyOpenSockets,
        _ => SocketError.SocketError,
    };
}
