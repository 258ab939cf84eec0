using System.Text.Json;
using System.Text.Json.Serialization;

namespace KestrelCluster.Supervisor.Control;

// The control socket's protocol: one JSON request per connection, one JSON response (SOCK_SEQPACKET messages).
// Upgrade: To, the supervisor to start (null: the one on disk now); Arguments, its `run` arguments (null: the running one's).
internal sealed record ControlRequest(string Command, int? Workers = null, string? Target = null, string? Payload = null, string? To = null, IReadOnlyList<string>? Arguments = null);

internal sealed record ControlResponse(bool Ok, string Message, IReadOnlyList<WorkerRow>? Workers = null, SupervisorRow? Supervisor = null)
{
    public static ControlResponse Success(string message, IReadOnlyList<WorkerRow>? workers = null, SupervisorRow? supervisor = null) => new(true, message, workers, supervisor);

    public static ControlResponse Failure(string message) => new(false, message);
}

internal sealed record WorkerRow(
    int Id,
    int Pid,
    int Generation,
    string State,
    double UptimeSeconds,
    int Restarts,
    int OpenConnections,
    long TotalConnections,
    double CpuPercent,
    long MemoryBytes);

internal sealed record SupervisorRow(int Pid, double UptimeSeconds, double CpuPercent, long MemoryBytes, int Generation, string Balance);

// `list --json`: the supervisor's own row and one row per worker.
internal sealed record ListOutput(SupervisorRow? Supervisor, IReadOnlyList<WorkerRow> Workers);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = false, UseStringEnumConverter = true)]
[JsonSerializable(typeof(ControlRequest))]
[JsonSerializable(typeof(ControlResponse))]
[JsonSerializable(typeof(IReadOnlyList<WorkerRow>))]
[JsonSerializable(typeof(ListOutput))]
internal sealed partial class ControlJson : JsonSerializerContext;

internal static class ControlCommands
{
    public const string List = "list";
    public const string Reload = "reload";
    public const string Scale = "scale";
    public const string Stop = "stop";
    public const string Send = "send";
    public const string Upgrade = "upgrade";
}
