using System.Runtime.InteropServices;

namespace KestrelCluster.Tests.Infrastructure;

internal static partial class ProcessInfo
{
    public const int SIGKILL = 9;
    public const int SIGHUP = 1;
    public const int SIGTERM = 15;
    public const int SIGCONT = 18;
    public const int SIGSTOP = 19;

    // A zombie (exited, not yet reaped) counts as gone: it holds no sockets and runs no code.
    public static bool IsAlive(int pid) => Stat(pid) is { State: not ('Z' or 'X') };

    /// <summary>
    /// Live processes (other than this one) whose environment mentions <paramref name="text"/>: a run's
    /// private runtime folder is inherited by everything it started, so this finds strays whatever their pid.
    /// </summary>
    public static IReadOnlyList<int> PidsWithEnvironmentContaining(string text)
    {
        var needle = System.Text.Encoding.UTF8.GetBytes(text);
        var found = new List<int>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }

            try
            {
                if (File.ReadAllBytes(Path.Combine(directory, "environ")).AsSpan().IndexOf(needle) >= 0 && IsAlive(pid))
                {
                    found.Add(pid);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // gone meanwhile, or not ours to read
            }
        }

        return found;
    }

    public static void Signal(int pid, int signal) => _ = kill(pid, signal);

    /// <summary>Live processes whose parent is <paramref name="parentPid"/>.</summary>
    public static IReadOnlyList<int> ChildrenOf(int parentPid)
    {
        var children = new List<int>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(directory), out var pid) && Stat(pid) is { } stat && stat.ParentPid == parentPid && stat.State is not ('Z' or 'X'))
            {
                children.Add(pid);
            }
        }

        return children;
    }

    public static IReadOnlyDictionary<string, string> EnvironmentOf(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/environ").Split('\0', StringSplitOptions.RemoveEmptyEntries)
                .Select(e => e.Split('=', 2)).Where(e => e.Length == 2).GroupBy(e => e[0]).ToDictionary(g => g.Key, g => g.First()[1]);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return new Dictionary<string, string>();
        }
    }

    /// <summary>
    /// Open file descriptors of a process (/proc/pid/fd), or -1 when it is gone. The runtime keeps each assembly it
    /// loads open, lazily and for good (even when idle); those are not counted, since they are not per connection.
    /// </summary>
    public static int FdCount(int pid)
    {
        var targets = FdTargets(pid);
        return targets.Count == 0 ? -1 : targets.Count(t => !t.EndsWith(".dll", StringComparison.Ordinal));
    }

    /// <summary>What each open fd of a process points at ("socket:[123]", "/dev/null", "anon_inode:[eventpoll]"...).</summary>
    public static IReadOnlyList<string> FdTargets(int pid)
    {
        try
        {
            return [.. Directory.GetFileSystemEntries($"/proc/{pid}/fd").Select(f =>
            {
                try
                {
                    return $"{Path.GetFileName(f)} -> {new FileInfo(f).LinkTarget}";
                }
                catch (IOException)
                {
                    return $"{Path.GetFileName(f)} -> (gone)";
                }
            })];
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    /// <summary>Resident memory in KiB (VmRSS of /proc/pid/status), or -1 when it is gone.</summary>
    public static long RssKiB(int pid)
    {
        try
        {
            var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
            return line is null ? -1 : long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0]);
        }
        catch (IOException)
        {
            return -1;
        }
    }

    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'.
    private static (char State, int ParentPid)? Stat(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return (fields[0][0], int.Parse(fields[1]));
        }
        catch (Exception ex) when (ex is IOException or FormatException or IndexOutOfRangeException)
        {
            return null;
        }
    }

    public static async Task<bool> WaitUntilGoneAsync(IEnumerable<int> pids, TimeSpan timeout)
    {
        var remaining = pids.ToList();
        try
        {
            // A pid seen gone is not looked at again: the kernel may give its number to a new process.
            await Wait.UntilAsync(
                () =>
                {
                    remaining.RemoveAll(pid => !IsAlive(pid));
                    return remaining.Count == 0;
                },
                timeout);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    /// <summary>The files a process has mapped (/proc/pid/maps): its executable, native libraries and loaded assemblies.</summary>
    public static HashSet<string> MappedFiles(int pid) =>
        [.. File.ReadLines($"/proc/{pid}/maps").Select(l => l.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries)).Where(f => f.Length == 6).Select(f => f[5].Trim()).Where(f => f.StartsWith('/'))];

    /// <summary>Inodes of the sockets listening on 127.0.0.1:<paramref name="port"/> (state 0A in /proc/net/tcp), in order.</summary>
    public static List<string> ListeningInodes(int port)
    {
        var local = $"0100007F:{port:X4}";
        return [.. File.ReadLines("/proc/net/tcp").Skip(1)
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(fields => fields[1] == local && fields[3] == "0A")
            .Select(fields => fields[9])
            .Order()];
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);
}
