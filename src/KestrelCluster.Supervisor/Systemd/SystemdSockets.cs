using System.Globalization;
using System.Net.Sockets;
using KestrelCluster.Interop;

namespace KestrelCluster.Supervisor.Systemd;

// sd_listen_fds(3): the listening sockets systemd passes us, and the names we store them under (FDSTORE=1).
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
