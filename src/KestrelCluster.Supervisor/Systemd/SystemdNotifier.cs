using System.Globalization;
using System.Net.Sockets;
using KestrelCluster.Interop;

namespace KestrelCluster.Supervisor.Systemd;

// The parts of systemd's service protocol a supervisor needs (sd_notify(3), sd_listen_fds(3)):
// readiness, reload and stop notifications, watchdog pings, and sockets passed by socket activation.
internal sealed class SystemdNotifier : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    private readonly UnixDomainSocketEndPoint _endPoint;

    private SystemdNotifier(string path, TimeSpan? watchdogInterval)
    {
        // "@name" is an abstract socket: its address starts with a NUL byte.
        _endPoint = new UnixDomainSocketEndPoint(path.StartsWith('@') ? "\0" + path[1..] : path);
        WatchdogInterval = watchdogInterval;
    }

    /// <summary>Half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises; null when no watchdog is asked for.</summary>
    public TimeSpan? WatchdogInterval { get; }

    // Variables meant for the supervisor alone: workers must not notify systemd or adopt its sockets.
    public static readonly string[] Variables = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"];

    public static SystemdNotifier? FromEnvironment()
    {
        var path = Environment.GetEnvironmentVariable("NOTIFY_SOCKET");
        if (string.IsNullOrEmpty(path) || !(path.StartsWith('/') || path.StartsWith('@')))
        {
            return null;
        }

        TimeSpan? watchdog = null;
        if (long.TryParse(Environment.GetEnvironmentVariable("WATCHDOG_USEC"), NumberStyles.None, CultureInfo.InvariantCulture, out var usec) && usec > 0
            && (Environment.GetEnvironmentVariable("WATCHDOG_PID") is not { Length: > 0 } watchdogPid || watchdogPid == Environment.ProcessId.ToString(CultureInfo.InvariantCulture)))
        {
            watchdog = TimeSpan.FromMicroseconds(usec / 2.0);
        }

        return new SystemdNotifier(path, watchdog);
    }

    public void Notify(string state)
    {
        try
        {
            _socket.SendTo(System.Text.Encoding.UTF8.GetBytes(state), _endPoint);
        }
        catch (SocketException)
        {
            // systemd went away or never listened: nothing to tell.
        }
    }

    /// <summary>
    /// Puts a listening socket in systemd's fd store (FDSTORE=1, FileDescriptorStoreMax= in the unit): a restart or a
    /// crash of the supervisor then never closes the port, and the next supervisor gets it back in LISTEN_FDS.
    /// </summary>
    public void StoreListener(string requested, int fd)
    {
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
            socket.Connect(_endPoint);
            using var channel = new KestrelCluster.Protocol.ChannelSocket(socket);
            _ = channel.TrySend(System.Text.Encoding.UTF8.GetBytes($"FDSTORE=1\nFDNAME={SystemdSockets.FdNameFor(requested)}"), [fd]);
        }
        catch (SocketException)
        {
            // systemd went away or never listened: nothing to store.
        }
    }

    public void Dispose() => _socket.Dispose();
}
