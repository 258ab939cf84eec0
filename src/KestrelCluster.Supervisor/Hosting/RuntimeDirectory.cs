using System.Globalization;
using System.Net.Sockets;
using KestrelCluster.Interop;
using KestrelCluster.Supervisor.Cli;

namespace KestrelCluster.Supervisor.Hosting;

// $XDG_RUNTIME_DIR/kestrel-cluster/<name> (or $TMPDIR/kestrel-cluster-<uid>/<name>): 0700, ours alone, or 0750
// for the --control-group. Holds the channel socket the workers join, the control socket, the supervisor's pid and
// the workers' data protection keys (keys/, 0700 even for the --control-group).
internal sealed class RuntimeDirectory : IDisposable
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode OwnerAndGroup = OwnerOnly | UnixFileMode.GroupRead | UnixFileMode.GroupExecute;
    // The root of a user who opens a cluster to a group: others may pass through to a folder they know the name of
    // (which then checks them) but not list it.
    private const UnixFileMode PassThrough = OwnerOnly | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
    private const int MaxSocketPathLength = 107;

    public const string ControlSocketName = "control.sock";
    private const string ChannelSocketName = "channel.sock";
    private const string PidFileName = "supervisor.pid";
    private const string DataProtectionKeysName = "keys";

    private RuntimeDirectory(string path, uint? controlGroup)
    {
        Path = path;
        ControlGroup = controlGroup;
    }

    public string Path { get; }

    /// <summary>The group whose members may use the control socket too (--control-group), if any.</summary>
    public uint? ControlGroup { get; }

    public string ChannelSocketPath => System.IO.Path.Combine(Path, ChannelSocketName);

    public string ControlSocketPath => System.IO.Path.Combine(Path, ControlSocketName);

    private string PidFilePath => System.IO.Path.Combine(Path, PidFileName);

    /// <summary>The key ring the workers share (KESTREL_CLUSTER_DATA_PROTECTION_KEYS), beside the channel socket.</summary>
    public static string DataProtectionKeysPathBeside(string channelSocketPath) => System.IO.Path.Combine(System.IO.Path.GetDirectoryName(channelSocketPath)!, DataProtectionKeysName);

    /// <summary>Where a supervisor running as <paramref name="userId"/> with this process's environment keeps its cluster folders.</summary>
    public static string RootFor(uint userId)
    {
        var xdg = Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR");
        return !string.IsNullOrEmpty(xdg) && System.IO.Path.IsPathRooted(xdg)
            ? System.IO.Path.Combine(xdg, "kestrel-cluster")
            : TempRootFor(userId);
    }

    /// <summary>The root of a supervisor without XDG_RUNTIME_DIR, e.g. a system service's.</summary>
    public static string TempRootFor(uint userId) => System.IO.Path.Combine(System.IO.Path.GetTempPath(), TempRootPrefix + userId.ToString(CultureInfo.InvariantCulture));

    public const string TempRootPrefix = "kestrel-cluster-";

    /// <summary>
    /// Reads a cluster folder's pid file ("pid start-time uid"): Gone when it names a process that no longer runs
    /// (pids are reused, start times are not). No pid file (a folder being set up, an older supervisor's) or one we
    /// cannot read counts as alive, owner unknown.
    /// </summary>
    public static (bool Gone, uint? Owner) ReadSupervisor(string folder)
    {
        string[] recorded;
        try
        {
            recorded = File.ReadAllText(System.IO.Path.Combine(folder, PidFileName)).Split(' ', StringSplitOptions.TrimEntries);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return (false, null);
        }

        if (recorded.Length != 3
            || !int.TryParse(recorded[0], NumberStyles.None, CultureInfo.InvariantCulture, out _)
            || !uint.TryParse(recorded[2], NumberStyles.None, CultureInfo.InvariantCulture, out var owner))
        {
            return (false, null);
        }

        return (StartTimeOf(recorded[0]) != recorded[1], owner);
    }

    // The process's start time (ticks since boot), or null once it is gone: a pid alone may have been reused.
    private static string? StartTimeOf(string pid)
        => int.TryParse(pid, NumberStyles.None, CultureInfo.InvariantCulture, out var id) && ProcStat.Read(id) is { IsRunning: true } stat ? stat.StartTime : null;

    /// <param name="root">Where cluster folders live; default: the per-user root (an in-process host gives its own).</param>
    /// <param name="controlGroup">Opens the folder (0750) and the control socket (0660) to this group.</param>
    public static RuntimeDirectory Create(string clusterName, string? root = null, uint? controlGroup = null)
    {
        root ??= RootFor(Libc.GetEffectiveUserId());
        var path = System.IO.Path.Combine(root, clusterName);
        EnsureOurs(root, controlGroup is null ? KeepPassThrough(root) : PassThrough, group: null);
        EnsureOurs(path, controlGroup is null ? OwnerOnly : OwnerAndGroup, controlGroup);

        var directory = new RuntimeDirectory(path, controlGroup);
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
        // Kept from a supervisor that was killed: its keys still open the cookies its workers issued.
        EnsureOurs(DataProtectionKeysPathBeside(directory.ChannelSocketPath), OwnerOnly, group: null);
        var self = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        File.WriteAllText(directory.PidFilePath, $"{self} {StartTimeOf(self)} {Libc.GetEffectiveUserId()}\n");
        // Readable by whoever may enter the folder: the CLI tells a live cluster from a dead one's leftovers by it.
        File.SetUnixFileMode(directory.PidFilePath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        return directory;
    }

    // Another cluster of ours may have opened the root to pass through; closing it would lock out its group.
    private static UnixFileMode KeepPassThrough(string root)
        => Directory.Exists(root) && File.GetUnixFileMode(root) == PassThrough ? PassThrough : OwnerOnly;

    private static void EnsureOurs(string path, UnixFileMode mode, uint? group)
    {
        Directory.CreateDirectory(path, mode);
        try
        {
            // Only the owner may chmod: this both proves the folder is ours and fixes a loose mode.
            File.SetUnixFileMode(path, mode);
        }
        catch (UnauthorizedAccessException)
        {
            throw new CommandLineException($"the runtime folder {path} belongs to another user; refusing to use it.");
        }

        if (group is { } gid && Libc.Chown(path, Libc.Unchanged, gid) != 0)
        {
            throw new CommandLineException($"cannot give the runtime folder {path} to group {gid} (errno {Errno.Last}): the supervisor's user must be a member of the --control-group.");
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
            File.Delete(PidFilePath);
            // The keys are this run's: an app that wants them across supervisor restarts persists them itself.
            var keys = DataProtectionKeysPathBeside(ChannelSocketPath);
            if (Directory.Exists(keys))
            {
                Directory.Delete(keys, recursive: true);
            }

            Directory.Delete(Path);
        }
        catch (IOException)
        {
            // something else lives there; leave it
        }
    }
}
