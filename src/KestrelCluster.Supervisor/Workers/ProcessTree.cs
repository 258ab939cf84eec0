using System.Globalization;

namespace KestrelCluster.Supervisor.Workers;

internal static class ProcessTree
{
    // Walks /proc/<pid>/stat parents: a worker started through a wrapper (`dotnet run`) is a descendant.
    public static bool IsSameOrDescendant(int pid, int ancestor)
    {
        for (var depth = 0; depth < 16 && pid > 1; depth++)
        {
            if (pid == ancestor)
            {
                return true;
            }

            pid = ParentOf(pid);
        }

        return false;
    }

    private static int ParentOf(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return int.Parse(fields[1], CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is IOException or FormatException or IndexOutOfRangeException or ArgumentOutOfRangeException)
        {
            return 0;
        }
    }
}
