using KestrelCluster.Supervisor.Cli;

namespace KestrelCluster.Supervisor.Workers;

// What a worker process runs: resolved once before any worker starts, and by each publish with --project.
// Variables: extra environment variables for every worker (a null value removes an inherited one); the cluster's
// own variables are set after them.
internal sealed record WorkerCommand(string FileName, IReadOnlyList<string> Arguments, string WorkingDirectory, string AppName, IReadOnlyDictionary<string, string?>? Variables = null)
{
    // Set in every worker's environment before the cluster's own variables (WorkerRuntimeDefaults, WorkerStartupHook).
    public IReadOnlyDictionary<string, string> RuntimeDefaults { get; init; } = new Dictionary<string, string>();

    // Set when the app was published for this command (--project): a folder the supervisor owns and removes
    // once no worker runs from it.
    public string? PublishFolder { get; init; }

    public override string ToString() => string.Join(' ', [FileName, .. Arguments]);

    /// <summary>The command given after `--`, checked now rather than by watching every worker fail to start.</summary>
    public static WorkerCommand ForCommand(RunOptions options)
        => FromCommand(options.Command, WorkerWorkingDirectory.ForCommand(options.WorkingDirectory)) with { RuntimeDefaults = RuntimeDefaultsFor(options) };

    public static IReadOnlyDictionary<string, string> RuntimeDefaultsFor(RunOptions options)
    {
        var inherited = Environment.GetEnvironmentVariables();
        return WorkerRuntimeDefaults.For(options.Workers, Environment.ProcessorCount, inherited)
            .Concat(WorkerStartupHook.For(inherited, AppContext.BaseDirectory))
            .ToDictionary();
    }

    private static WorkerCommand FromCommand(IReadOnlyList<string> command, string workingDirectory)
    {
        var fileName = command[0];
        // Process.Start would resolve `./app` against the supervisor's own (physical) folder.
        if (fileName.Contains('/'))
        {
            fileName = Path.GetFullPath(fileName, workingDirectory);
        }

        var arguments = command.Skip(1).ToList();
        var appName = Path.GetFileNameWithoutExtension(fileName);

        // `dotnet MyApp.dll`: check the app exists now, rather than watching every worker fail to start.
        if (IsDotnetHost(fileName) && arguments.Count > 0 && arguments[0].EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
        {
            var dll = Path.GetFullPath(arguments[0], workingDirectory);
            if (!File.Exists(dll))
            {
                throw new CommandLineException($"app not found: {dll}");
            }

            appName = Path.GetFileNameWithoutExtension(dll);
        }
        else if (fileName.Contains('/') && !File.Exists(fileName))
        {
            throw new CommandLineException($"app not found: {fileName}");
        }

        // A worker's $PWD names the folder it runs in, as a shell would set it.
        return new WorkerCommand(fileName, arguments, workingDirectory, appName, new Dictionary<string, string?> { ["PWD"] = workingDirectory });
    }

    /// <summary>The .csproj of `--project`, or of the current folder when neither it nor a command is given.</summary>
    public static string FindProject(RunOptions options) => FindProject(options.Project ?? Directory.GetCurrentDirectory(), explicitPath: options.Project is not null);

    private static string FindProject(string path, bool explicitPath)
    {
        var full = Path.GetFullPath(path);
        if (File.Exists(full))
        {
            if (!full.EndsWith(".csproj", StringComparison.OrdinalIgnoreCase))
            {
                throw new CommandLineException($"--project must name a .csproj file or its folder; got {full}");
            }

            return full;
        }

        if (!Directory.Exists(full))
        {
            throw new CommandLineException($"project not found: {full}");
        }

        var projects = Directory.GetFiles(full, "*.csproj");
        return projects.Length switch
        {
            1 => projects[0],
            0 when explicitPath => throw new CommandLineException($"no .csproj in {full}"),
            0 => throw new CommandLineException($"no .csproj in the current folder ({full}); use --project <path> or give the command after '--'."),
            _ => throw new CommandLineException($"{full} holds more than one .csproj; name one with --project."),
        };
    }

    private static bool IsDotnetHost(string fileName) => Path.GetFileName(fileName) is "dotnet" or "dotnet.exe";

    internal static string DotnetHostPath()
    {
        // Set by the dotnet CLI for the processes it starts; otherwise we are probably `dotnet kestrel-cluster.dll`.
        var hostPath = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(hostPath) && File.Exists(hostPath))
        {
            return hostPath;
        }

        var processPath = Environment.ProcessPath;
        return processPath is not null && IsDotnetHost(processPath) ? processPath : "dotnet";
    }
}
