using KestrelCluster.Interop;

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

    private static int ParentOf(int pid) => ProcStat.Read(pid)?.ParentPid ?? 0;
}
