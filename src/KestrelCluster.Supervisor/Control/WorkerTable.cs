using System.Globalization;
using System.Text;

namespace KestrelCluster.Supervisor.Control;

internal static class WorkerTable
{
    public static string Format(SupervisorRow? supervisor, IReadOnlyList<WorkerRow> rows)
    {
        string[] header = ["id", "pid", "gen", "state", "uptime", "restarts", "open", "total", "cpu", "memory"];
        var cells = new List<string[]>();
        if (supervisor is not null)
        {
            cells.Add(["-", Number(supervisor.Pid), Number(supervisor.Generation), "supervisor", FormatUptime(supervisor.UptimeSeconds), "-", "-", "-", FormatCpu(supervisor.CpuPercent), FormatBytes(supervisor.MemoryBytes)]);
        }

        cells.AddRange(rows.Select(r => new[]
        {
            Number(r.Id),
            Number(r.Pid),
            Number(r.Generation),
            r.State,
            FormatUptime(r.UptimeSeconds),
            Number(r.Restarts),
            Number(r.OpenConnections),
            Number(r.TotalConnections),
            FormatCpu(r.CpuPercent),
            FormatBytes(r.MemoryBytes),
        }));
        var widths = header.Select((h, i) => Math.Max(h.Length, cells.Count == 0 ? 0 : cells.Max(c => c[i].Length))).ToArray();
        var text = new StringBuilder();
        foreach (var line in cells.Prepend(header))
        {
            text.AppendLine(string.Join("  ", line.Select((cell, i) => cell.PadRight(widths[i]))).TrimEnd());
        }

        return text.ToString();
    }

    private static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static string FormatCpu(double percent) => string.Create(CultureInfo.InvariantCulture, $"{percent:0.#}%");

    private static string FormatBytes(long bytes) => bytes switch
    {
        0 => "-",
        < 1L << 30 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 20):0.#} MB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):0.##} GB"),
    };

    private static string FormatUptime(double seconds) => seconds switch
    {
        < 60 => string.Create(CultureInfo.InvariantCulture, $"{seconds:0}s"),
        < 3600 => string.Create(CultureInfo.InvariantCulture, $"{seconds / 60:0}m"),
        < 86400 => string.Create(CultureInfo.InvariantCulture, $"{seconds / 3600:0.#}h"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{seconds / 86400:0.#}d"),
    };
}
