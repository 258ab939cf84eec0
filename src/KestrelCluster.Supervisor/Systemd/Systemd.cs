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

internal static class SystemdSockets
{
    private const int FirstFd = 3;

    // Our fd store names: the endpoint as the app asked for it, escaped (FDNAME allows no ':' and at most 255 characters).
    private const string FdNamePrefix = "kc-";

    public static string FdNameFor(string requested)
    {
        var name = FdNamePrefix + Uri.EscapeDataString(requested);
        return name.Length <= 255 ? name : name[..255];
    }

    /// <summary>
    /// Listening sockets passed by socket activation or given back from the fd store (LISTEN_FDS for this pid), made
    /// close-on-exec, with the endpoint each was bound for when it is one we stored (else null: match by address).
    /// </summary>
    public static IReadOnlyList<(Socket Socket, string? Requested)> TakeNamed()
    {
        var sockets = Take();
        var names = (Environment.GetEnvironmentVariable("LISTEN_FDNAMES") ?? "").Split(':');
        return [.. sockets.Select((socket, i) => (socket, i < names.Length && names[i].StartsWith(FdNamePrefix, StringComparison.Ordinal)
            ? Uri.UnescapeDataString(names[i][FdNamePrefix.Length..])
            : null))];
    }

    /// <summary>
    /// <see cref="TakeNamed"/>, with the sockets we stored for one endpoint together (its accept threads' SO_REUSEPORT
    /// group); a socket systemd bound itself stays on its own.
    /// </summary>
    public static IReadOnlyList<(IReadOnlyList<Socket> Sockets, string? Requested)> TakeGrouped()
    {
        var grouped = new List<(IReadOnlyList<Socket> Sockets, string? Requested)>();
        foreach (var (socket, requested) in TakeNamed())
        {
            var index = requested is null ? -1 : grouped.FindIndex(g => g.Requested == requested);
            if (index >= 0)
            {
                grouped[index] = (grouped[index].Sockets.Append(socket).ToList(), requested);
            }
            else
            {
                grouped.Add(([socket], requested));
            }
        }

        return grouped;
    }

    /// <summary>Listening sockets passed by socket activation (LISTEN_FDS for this pid), made close-on-exec.</summary>
    public static IReadOnlyList<Socket> Take()
    {
        if (!int.TryParse(Environment.GetEnvironmentVariable("LISTEN_FDS"), NumberStyles.None, CultureInfo.InvariantCulture, out var count) || count <= 0
            || Environment.GetEnvironmentVariable("LISTEN_PID") != Environment.ProcessId.ToString(CultureInfo.InvariantCulture))
        {
            return [];
        }

        var sockets = new List<Socket>();
        for (var fd = FirstFd; fd < FirstFd + count; fd++)
        {
            // Inherited without FD_CLOEXEC: without this every worker would hold the listening socket too.
            Libc.Fcntl(fd, Libc.F_SETFD, Libc.FD_CLOEXEC);
            sockets.Add(new Socket(new SafeSocketHandle(fd, ownsHandle: true)));
        }

        return sockets;
    }
}
