using System.Net.Sockets;
using KestrelCluster.Interop;
using KestrelCluster.Supervisor.Cli;

namespace KestrelCluster.Supervisor.Hosting;

// $XDG_RUNTIME_DIR/kestrel-cluster/<name> (or /tmp/kestrel-cluster-<uid>/<name>): 0700, ours alone.
// Holds the channel socket the workers join and, per cluster name, the control socket.
internal sealed class RuntimeDirectory : IDisposable
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const int MaxSocketPathLength = 107;

    private RuntimeDirectory(string path)
    {
        Path = path;
    }

    public string Path { get; }

    public string ChannelSocketPath => System.IO.Path.Combine(Path, ChannelSocketName);

    public string ControlSocketPath => System.IO.Path.Combine(Path, ControlSocketName);

    private const string ChannelSocketName = "channel.sock";
    private const string ControlSocketName = "control.sock";

    /// <summary>The control socket of the named cluster, or of the only one running when no name is given.</summary>
    public static string FindControlSocket(string? clusterName)
    {
        var root = RootFor(Libc.GetEffectiveUserId());
        if (clusterName is not null)
        {
            var path = System.IO.Path.Combine(root, clusterName, ControlSocketName);
            return File.Exists(path) ? path : throw new CommandLineException($"no cluster named '{clusterName}' is running (no {path}).");
        }

        var running = Directory.Exists(root)
            ? Directory.GetDirectories(root).Where(d => File.Exists(System.IO.Path.Combine(d, ControlSocketName))).ToList()
            : [];
        return running.Count switch
        {
            1 => System.IO.Path.Combine(running[0], ControlSocketName),
            0 => throw new CommandLineException($"no cluster is running (nothing in {root})."),
            _ => throw new CommandLineException($"{running.Count} clusters are running ({string.Join(", ", running.Select(System.IO.Path.GetFileName))}); name one with -n."),
        };
    }

    public static string RootFor(uint userId)
    {
        var xdg = Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR");
        return !string.IsNullOrEmpty(xdg) && System.IO.Path.IsPathRooted(xdg)
            ? System.IO.Path.Combine(xdg, "kestrel-cluster")
            : System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"kestrel-cluster-{userId}");
    }

    /// <param name="root">Where cluster folders live; default: the per-user root (an in-process host gives its own).</param>
    public static RuntimeDirectory Create(string clusterName, string? root = null)
    {
        root ??= RootFor(Libc.GetEffectiveUserId());
        var path = System.IO.Path.Combine(root, clusterName);
        EnsurePrivate(root);
        EnsurePrivate(path);

        var directory = new RuntimeDirectory(path);
        if (directory.ChannelSocketPath.Length > MaxSocketPathLength)
        {
            throw new CommandLineException($"the runtime folder {path} is too long for a Unix socket path; use a shorter --name or XDG_RUNTIME_DIR.");
        }

        if (File.Exists(directory.ChannelSocketPath))
        {
            if (IsAnswering(directory.ChannelSocketPath))
            {
                throw new CommandLineException($"a cluster named '{clusterName}' is already running (channel {directory.ChannelSocketPath}); choose another --name.");
            }

            // Left behind by a supervisor that was killed.
            File.Delete(directory.ChannelSocketPath);
        }

        File.Delete(directory.ControlSocketPath);

        return directory;
    }

    private static void EnsurePrivate(string path)
    {
        Directory.CreateDirectory(path, OwnerOnly);
        try
        {
            // Only the owner may chmod: this both proves the folder is ours and fixes a loose mode.
            File.SetUnixFileMode(path, OwnerOnly);
        }
        catch (UnauthorizedAccessException)
        {
            throw new CommandLineException($"the runtime folder {path} belongs to another user; refusing to use it.");
        }
    }

    private static bool IsAnswering(string socketPath)
    {
        using var probe = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(socketPath));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    public void Dispose()
    {
        try
        {
            File.Delete(ChannelSocketPath);
            File.Delete(ControlSocketPath);
            Directory.Delete(Path);
        }
        catch (IOException)
        {
            // something else lives there; leave it
        }
    }
}
