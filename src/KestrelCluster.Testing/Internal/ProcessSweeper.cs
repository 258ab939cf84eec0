using System.Collections.Concurrent;
using System.Text;
using KestrelCluster.Supervisor.Hosting;

namespace KestrelCluster.Testing.Internal;

// The last line of defence against a stray worker: every process a cluster started carries the cluster's
// private channel path in its environment (also grandchildren of a wrapper command), so scanning /proc finds
// them all by pid, whatever happened to the supervisor. Runs on disposal and when the test process exits.
internal static class ProcessSweeper
{
    private static readonly ConcurrentDictionary<string, string> s_live = new(StringComparer.Ordinal);
    private static int s_hooked;

    /// <summary>Kills the cluster's processes, and removes its runtime folder, if the test process ends before the factory is disposed.</summary>
    public static void Register(string channelPath, string runtimeRoot)
    {
        s_live[channelPath] = runtimeRoot;
        if (Interlocked.Exchange(ref s_hooked, 1) == 0)
        {
            AppDomain.CurrentDomain.ProcessExit += (_, _) =>
            {
                foreach (var (channelPath, runtimeRoot) in s_live)
                {
                    KillAll(channelPath);
                    try
                    {
                        Directory.Delete(runtimeRoot, recursive: true);
                    }
                    catch (IOException)
                    {
                    }
                }
            };
        }
    }

    public static void Unregister(string channelPath) => s_live.TryRemove(channelPath, out _);

    /// <summary>SIGKILLs every live process started for the cluster whose channel is <paramref name="channelPath"/>.</summary>
    public static IReadOnlyList<int> KillAll(string channelPath)
    {
        var pids = Find(channelPath);
        foreach (var pid in pids)
        {
            Kill(pid);
        }

        return pids;
    }

    public static IReadOnlyList<int> Find(string channelPath)
    {
        var needle = Encoding.UTF8.GetBytes($"{InProcessCluster.ChannelVariable}={channelPath}\0");
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
                // gone meanwhile, or another user's
            }
        }

        return found;
    }

    // A zombie (exited, not yet reaped) counts as gone: it runs no code and holds no socket.
    public static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..][0] is not ('Z' or 'X');
        }
        catch (IOException)
        {
            return false;
        }
    }

    public static void Kill(int pid)
    {
        if (pid <= 0)
        {
            // a slot with no process yet
            return;
        }

        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            process.Kill();
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            // already gone
        }
    }
}
