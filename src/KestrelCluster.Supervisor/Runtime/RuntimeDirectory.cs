using System.Globalization;
using System.Net.Sockets;
using KestrelCluster.Interop;

namespace KestrelCluster.Supervisor.Runtime;

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

    private RuntimeDirectory(string path, uint? controlGroup, string? suffix = null)
    {
        Path = path;
        ControlGroup = controlGroup;
        // A supervisor started by an upgrade shares the folder with the one it replaces: its own sockets get its
        // pid in their names until it takes over the control socket's well-known name.
        ChannelSocketPath = System.IO.Path.Combine(Path, suffix is null ? ChannelSocketName : $"channel-{suffix}.sock");
        ControlSocketPath = System.IO.Path.Combine(Path, suffix is null ? ControlSocketName : $"control-{suffix}.sock");
        _ownsSharedFiles = suffix is null;
    }

    // The control socket, pid file, keys and folder: the supervisor serving the cluster's name owns them.
    private bool _ownsSharedFiles;

    public string Path { get; }

    /// <summary>The group whose members may use the control socket too (--control-group), if any.</summary>
    public uint? ControlGroup { get; }

    public string ChannelSocketPath { get; }

    public string ControlSocketPath { get; private set; }

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
            // A shorter --name fixes it; the same exit code as bad input (Program).
            throw new RuntimeFolderException($"the runtime folder {path} is too long for a Unix socket path; use a shorter --name or XDG_RUNTIME_DIR.");
        }

        if (File.Exists(directory.ChannelSocketPath))
        {
            if (IsAnswering(directory.ChannelSocketPath))
            {
                throw new ClusterAlreadyRunningException($"a cluster named '{clusterName}' is already running (channel {directory.ChannelSocketPath}); choose another --name.");
            }

            // Left behind by a supervisor that was killed.
            File.Delete(directory.ChannelSocketPath);
        }

        else if (File.Exists(directory.PidFilePath) && !ReadSupervisor(path).Gone)
        {
            // After an upgrade the serving supervisor's channel socket has its pid in the name; the pid file tells.
            throw new ClusterAlreadyRunningException($"a cluster named '{clusterName}' is already running (pid file {directory.PidFilePath}); choose another --name.");
        }

        File.Delete(directory.ControlSocketPath);
        // Kept from a supervisor that was killed: its keys still open the cookies its workers issued.
        EnsureOurs(DataProtectionKeysPathBeside(directory.ChannelSocketPath), OwnerOnly, group: null);
        directory.WritePidFile();
        return directory;
    }

    /// <summary>
    /// The folder of a running cluster, for the supervisor an upgrade started: nothing of the running one is touched
    /// until <see cref="TakeOver"/>. The keys stay the same, so cookies issued before the upgrade still open.
    /// </summary>
    public static RuntimeDirectory OpenForUpgrade(string clusterName, string? root = null, uint? controlGroup = null)
    {
        root ??= RootFor(Libc.GetEffectiveUserId());
        var path = System.IO.Path.Combine(root, clusterName);
        EnsureOurs(path, controlGroup is null ? OwnerOnly : OwnerAndGroup, controlGroup);
        var directory = new RuntimeDirectory(path, controlGroup, Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        File.Delete(directory.ChannelSocketPath);
        File.Delete(directory.ControlSocketPath);
        EnsureOurs(DataProtectionKeysPathBeside(directory.ChannelSocketPath), OwnerOnly, group: null);
        return directory;
    }

    /// <summary>
    /// Upgrade, new supervisor: its control socket takes the well-known name (rename(2) replaces the old one's
    /// atomically, so `list` never finds none) and the pid file names it.
    /// </summary>
    public void TakeOver()
    {
        var wellKnown = System.IO.Path.Combine(Path, ControlSocketName);
        if (ControlSocketPath != wellKnown)
        {
            File.Move(ControlSocketPath, wellKnown, overwrite: true);
            ControlSocketPath = wellKnown;
        }

        WritePidFile();
        _ownsSharedFiles = true;
    }

    /// <summary>Upgrade, old supervisor: the new one owns the control socket, pid file and keys; remove only our channel socket.</summary>
    public void HandOver() => _ownsSharedFiles = false;

    private void WritePidFile()
    {
        var self = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        var temporary = PidFilePath + "." + self;
        File.WriteAllText(temporary, $"{self} {StartTimeOf(self)} {Libc.GetEffectiveUserId()}\n");
        // Readable by whoever may enter the folder: the CLI tells a live cluster from a dead one's leftovers by it.
        File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        File.Move(temporary, PidFilePath, overwrite: true);
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
            throw new RuntimeFolderException($"the runtime folder {path} belongs to another user; refusing to use it.");
        }

        if (group is { } gid && Libc.Chown(path, Libc.Unchanged, gid) != 0)
        {
            throw new RuntimeFolderException($"cannot give the runtime folder {path} to group {gid} (errno {Errno.Last}): the supervisor's user must be a member of the --control-group.");
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
            if (!_ownsSharedFiles)
            {
                // An upgrade's: the supervisor that replaced us (or that we failed to replace) owns the rest.
                if (ControlSocketPath != System.IO.Path.Combine(Path, ControlSocketName))
                {
                    File.Delete(ControlSocketPath);
                }

                return;
            }

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
