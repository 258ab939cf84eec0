using System.Text.Json;
using System.Text.Json.Serialization;

namespace KestrelCluster.Supervisor.Control;

// The control socket's protocol: one JSON request per connection, one JSON response (SOCK_SEQPACKET messages).
internal sealed record ControlRequest(string Command, int? Workers = null);

internal sealed record ControlResponse(bool Ok, string Message, IReadOnlyList<WorkerRow>? Workers = null)
{
    public static ControlResponse Success(string message, IReadOnlyList<WorkerRow>? workers = null) => new(true, message, workers);

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
    long TotalConnections);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = false, UseStringEnumConverter = true)]
[JsonSerializable(typeof(ControlRequest))]
[JsonSerializable(typeof(ControlResponse))]
[JsonSerializable(typeof(IReadOnlyList<WorkerRow>))]
internal sealed partial class ControlJson : JsonSerializerContext;

internal static class ControlCommands
{
    public const string List = "list";
    public const string Reload = "reload";
    public const string Scale = "scale";
    public const string Stop = "stop";
}
