using System.Globalization;
using KestrelCluster.Supervisor.Distribution;
using Microsoft.Extensions.Configuration;

namespace KestrelCluster.Supervisor.Cli;

// One setting of `run`, reachable three ways: `--kill-timeout 10` on the command line (wins),
// KESTREL_CLUSTER_KILL_TIMEOUT=10, or "killTimeout": 10 in kestrel-cluster.json next to the app.
internal sealed record RunSetting(string Option, string? ShortOption, string ConfigKey, Action<RunOptions, string> Apply)
{
    public string LongOption => "--" + Option;

    public string EnvironmentVariable => "KESTREL_CLUSTER_" + Option.ToUpperInvariant().Replace('-', '_');
}

internal static class RunSettings
{
    public const string FileName = "kestrel-cluster.json";

    public static readonly IReadOnlyList<RunSetting> All =
    [
        new("workers", "-w", "workers", (o, v) => o.Workers = CommandLine.ParseWorkers(v)),
        new("name", "-n", "name", (o, v) => o.Name = CommandLine.ParseName(v)),
        new("urls", null, "urls", (o, v) => o.Urls = CommandLine.ParseUrls(v, "--urls")),
        new("project", null, "project", (o, v) => o.Project = v.Length > 0 ? v : throw new CommandLineException("option '--project' needs a value.")),
        new("cwd", null, "cwd", (o, v) => o.WorkingDirectory = v.Length > 0 ? v : throw new CommandLineException("option '--cwd' needs a value.")),
        new("balance", null, "balance", (o, v) => o.Balance = CommandLine.ParseBalance(v)),
        new("affinity", null, "affinity", (o, v) => o.Affinity = CommandLine.ParseAffinity(v)),
        new("accept-threads", null, "acceptThreads", (o, v) => o.AcceptThreads = CommandLine.ParseAcceptThreads(v)),
        new("kill-timeout", null, "killTimeout", (o, v) => o.KillTimeout = CommandLine.ParseSeconds("--kill-timeout", v, allowZero: true)),
        new("ready-timeout", null, "readyTimeout", (o, v) => o.ReadyTimeout = CommandLine.ParseSeconds("--ready-timeout", v, allowZero: false)),
        new("heartbeat-timeout", null, "heartbeatTimeout", (o, v) => o.HeartbeatTimeout = CommandLine.ParseSeconds("--heartbeat-timeout", v, allowZero: true)),
        new("max-memory", null, "maxMemory", (o, v) => o.MaxMemoryBytes = ParseSize("--max-memory", v)),
        new("admin-urls", null, "adminUrls", (o, v) => o.AdminUrls = CommandLine.ParseUrls(v, "--admin-urls")),
        new("control-group", null, "controlGroup", (o, v) => o.ControlGroup = CommandLine.ParseGroup(v)),
    ];

    public static RunSetting? FindOption(string name) => All.FirstOrDefault(s => s.LongOption == name || s.ShortOption == name);

    /// <summary>
    /// Fills every setting the command line left out from KESTREL_CLUSTER_* variables, then from
    /// kestrel-cluster.json in <paramref name="appFolder"/>. A bad value fails with the setting's name and source.
    /// </summary>
    public static void ApplyLayers(RunOptions options, Func<string, string?> environment, string appFolder)
    {
        var file = LoadFile(appFolder);
        foreach (var setting in All)
        {
            if (options.ExplicitSettings.Contains(setting.Option))
            {
                continue;
            }

            if (environment(setting.EnvironmentVariable) is { Length: > 0 } fromEnvironment)
            {
                ApplyFrom(setting, options, fromEnvironment, setting.EnvironmentVariable);
            }
            else if (file?.Configuration[setting.ConfigKey] is { } fromFile)
            {
                ApplyFrom(setting, options, fromFile, $"'{setting.ConfigKey}' in {file.Value.Path}");
            }
        }

        if (options.Project is not null && options.Command.Count > 0)
        {
            throw new CommandLineException("give either a project or a command after '--', not both.");
        }

        if (options.Affinity == AffinityMode.On && options.Balance == BalanceMode.Shared)
        {
            throw new CommandLineException("--affinity on needs the supervisor to accept connections; with --balance shared the workers accept them.");
        }

        if (options.WorkingDirectory is not null && options.Command.Count == 0)
        {
            throw new CommandLineException("--cwd is for a command given after '--'; a project's workers run in the project's folder.");
        }
    }

    private static void ApplyFrom(RunSetting setting, RunOptions options, string value, string source)
    {
        try
        {
            setting.Apply(options, value);
        }
        catch (CommandLineException ex)
        {
            throw new CommandLineException($"{source}: {ex.Message}");
        }
    }

    private static (IConfiguration Configuration, string Path)? LoadFile(string appFolder)
    {
        var path = Path.Combine(appFolder, FileName);
        if (!File.Exists(path))
        {
            return null;
        }

        IConfiguration configuration;
        try
        {
            configuration = new ConfigurationBuilder().AddJsonFile(path, optional: false, reloadOnChange: false).Build();
        }
        catch (Exception ex) when (ex is FormatException or InvalidDataException or IOException)
        {
            throw new CommandLineException($"{path} is not valid JSON: {(ex.InnerException ?? ex).Message}");
        }

        // A misspelt setting would otherwise be ignored without a word.
        var known = All.Select(s => s.ConfigKey).ToHashSet(StringComparer.OrdinalIgnoreCase);
        foreach (var section in configuration.GetChildren())
        {
            if (!known.Contains(section.Key) || section.Value is null)
            {
                throw new CommandLineException($"{path}: unknown setting '{section.Key}' (known: {string.Join(", ", known)}).");
            }
        }

        return (configuration, path);
    }

    /// <summary>512M, 2G, 1.5G, 900K or a number of bytes; K, M and G are powers of 1024.</summary>
    public static long ParseSize(string name, string value)
    {
        var text = value.Trim();
        var unit = 1L;
        var suffix = text.TrimStart("0123456789.".ToCharArray());
        var number = text[..^suffix.Length];
        switch (suffix.ToUpperInvariant())
        {
            case "" or "B":
                break;
            case "K" or "KB" or "KIB":
                unit = 1L << 10;
                break;
            case "M" or "MB" or "MIB":
                unit = 1L << 20;
                break;
            case "G" or "GB" or "GIB":
                unit = 1L << 30;
                break;
            default:
                unit = 0;
                break;
        }

        if (unit == 0 || !double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var amount)
            || amount * unit < 1L << 20 || amount * unit > 1L << 50)
        {
            throw new CommandLineException($"{name} must be a size of at least 1M, like 512M or 2G; got '{value}'.");
        }

        return (long)(amount * unit);
    }
}
