using System.Net;
using System.Net.Sockets;
using KestrelCluster.Interop;

namespace KestrelCluster.Supervisor.Accept;

// Every listening socket the supervisor binds: one endpoint alone, a socket of its own SO_REUSEPORT group
// (--accept-threads), or a worker slot's socket (--balance shared).
internal static class ListeningSocket
{
    private const int Backlog = 4096;

    /// <summary>A socket bound to <paramref name="endPoint"/> and listening; reusePort joins (or starts) a SO_REUSEPORT group (TCP only).</summary>
    public static Socket Create(EndPoint endPoint, bool reusePort)
    {
        var socket = endPoint is UnixDomainSocketEndPoint
            ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            : new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (endPoint is IPEndPoint { Address: var address } && address.Equals(IPAddress.IPv6Any))
            {
                // Like Kestrel: [::] serves IPv4 too.
                socket.DualMode = true;
            }

            if (reusePort)
            {
                // Before bind: every socket of the group must have it, the first one included.
                socket.SetRawSocketOption(Libc.SOL_SOCKET, Libc.SO_REUSEPORT, BitConverter.GetBytes(1));
            }

            socket.Bind(endPoint);
            socket.Listen(Backlog);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}
