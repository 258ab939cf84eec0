using System.Globalization;

namespace KestrelCluster.Interop;

/// <summary>The fields of /proc/&lt;pid&gt;/stat the supervisor reads: one parser for all of them.</summary>
internal readonly record struct ProcStat(char State, int ParentPid, string StartTime)
{
    /// <summary>False for a zombie (exited, not yet reaped): it runs no code and holds no sockets.</summary>
    public bool IsRunning => State is not ('Z' or 'X');

    /// <summary>Null when there is no such process.</summary>
    public static ProcStat? Read(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'.
            // Field 22 (index 19 here), starttime: clock ticks from boot to the process's start.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return new ProcStat(fields[0][0], int.Parse(fields[1], CultureInfo.InvariantCulture), fields[19]);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException or ArgumentOutOfRangeException)
        {
            return null;
        }
    }
}
