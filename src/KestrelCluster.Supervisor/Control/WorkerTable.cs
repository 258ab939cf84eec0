using System.Globalization;
using System.Text;

namespace KestrelCluster.Supervisor.Control;

internal static class WorkerTable
{
    public static string Format(IReadOnlyList<WorkerRow> rows)
    {
        string[] header = ["id", "pid", "gen", "state", "uptime", "restarts", "open", "total"];
        var cells = rows.Select(r => new[]
        {
            r.Id.ToString(CultureInfo.InvariantCulture),
            r.Pid.ToString(CultureInfo.InvariantCulture),
            r.Generation.ToString(CultureInfo.InvariantCulture),
            r.State,
            FormatUptime(r.UptimeSeconds),
            r.Restarts.ToString(CultureInfo.InvariantCulture),
            r.OpenConnections.ToString(CultureInfo.InvariantCulture),
            r.TotalConnections.ToString(CultureInfo.InvariantCulture),
        }).ToList();
        var widths = header.Select((h, i) => Math.Max(h.Length, cells.Count == 0 ? 0 : cells.Max(c => c[i].Length))).ToArray();
        var text = new StringBuilder();
        foreach (var line in cells.Prepend(header))
        {
            text.AppendLine(string.Join("  ", line.Select((cell, i) => cell.PadRight(widths[i]))).TrimEnd());
        }

        return text.ToString();
    }

    private static string FormatUptime(double seconds) => seconds switch
    {
        < 60 => $"{seconds:0}s",
        < 3600 => $"{seconds / 60:0}m",
        < 86400 => $"{seconds / 3600:0.#}h",
        _ => $"{seconds / 86400:0.#}d",
    };
}
