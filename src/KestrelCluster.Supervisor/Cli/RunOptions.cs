namespace KestrelCluster.Supervisor.Cli;

internal sealed class RunOptions
{
    public const int DefaultKillTimeoutSeconds = 30;
    public const int DefaultReadyTimeoutSeconds = 30;

    public int Workers { get; set; } = Environment.ProcessorCount;

    public string? Name { get; set; }

    public string? Urls { get; set; }

    public string? Project { get; set; }

    public IReadOnlyList<string> Command { get; set; } = [];

    public BalanceMode Balance { get; set; } = BalanceMode.RoundRobin;

    public TimeSpan KillTimeout { get; set; } = TimeSpan.FromSeconds(DefaultKillTimeoutSeconds);

    public TimeSpan ReadyTimeout { get; set; } = TimeSpan.FromSeconds(DefaultReadyTimeoutSeconds);
}
