using KestrelCluster.Supervisor.Distribution;

namespace KestrelCluster.Supervisor.Cli;

internal sealed class RunOptions
{
    public const int DefaultKillTimeoutSeconds = 30;
    public const int DefaultReadyTimeoutSeconds = 30;
    public const int DefaultHeartbeatTimeoutSeconds = 30;

    public int Workers { get; set; } = Environment.ProcessorCount;

    public string? Name { get; set; }

    public string? Urls { get; set; }

    public string? Project { get; set; }

    public IReadOnlyList<string> Command { get; set; } = [];

    // --cwd: the workers' folder in command mode, as given (resolved again at each spawn).
    public string? WorkingDirectory { get; set; }

    public BalanceMode Balance { get; set; } = BalanceMode.RoundRobin;

    public AffinityMode Affinity { get; set; } = AffinityMode.Auto;
    // Threads accepting on each TCP endpoint when the supervisor accepts (not --balance shared).
    public int AcceptThreads { get; set; } = Accept.AcceptThreadCount.DefaultFor(Environment.ProcessorCount);

    public TimeSpan KillTimeout { get; set; } = TimeSpan.FromSeconds(DefaultKillTimeoutSeconds);

    public TimeSpan ReadyTimeout { get; set; } = TimeSpan.FromSeconds(DefaultReadyTimeoutSeconds);

    public TimeSpan HeartbeatTimeout { get; set; } = TimeSpan.FromSeconds(DefaultHeartbeatTimeoutSeconds);

    public long? MaxMemoryBytes { get; set; }

    public string? AdminUrls { get; set; }

    /// <summary>A group whose members may use the control socket besides the supervisor's user and root.</summary>
    public uint? ControlGroup { get; set; }

    // Settings given on the command line: the environment and kestrel-cluster.json do not override them.
    public HashSet<string> ExplicitSettings { get; } = new(StringComparer.Ordinal);
}
