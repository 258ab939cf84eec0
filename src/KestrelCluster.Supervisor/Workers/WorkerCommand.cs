using System.Diagnostics;
using KestrelCluster.Supervisor.Cli;

namespace KestrelCluster.Supervisor.Workers;

// What each worker process runs: resolved once, before any worker starts. Variables: extra environment variables for
// every worker (a null value removes an inherited one); the cluster's own variables are set after them.
internal sealed record WorkerCommand(string FileName, IReadOnlyList<string> Arguments, string WorkingDirectory, string AppName, IReadOnlyDictionary<string, string?>? Variables = null)
{
    // Set in every worker's environment before the cluster's own variables (WorkerRuntimeDefaults, WorkerStartupHook).
    public IReadOnlyDictionary<string, string> RuntimeDefaults { get; init; } = new Dictionary<string, string>();

    public override string ToString() => string.Join(' ', [FileName, .. Arguments]);

    public static async Task<WorkerCommand> ResolveAsync(RunOptions options, TextWriter progress, CancellationToken cancellationToken)
    {
        var inherited = Environment.GetEnvironmentVariables();
        var defaults = WorkerRuntimeDefaults.For(options.Workers, Environment.ProcessorCount, inherited)
            .Concat(WorkerStartupHook.For(inherited, AppContext.BaseDirectory))
            .ToDictionary();
        if (options.Command.Count > 0)
        {
            return FromCommand(options.Command, WorkerWorkingDirectory.ForCommand(options.WorkingDirectory)) with { RuntimeDefaults = defaults };
        }

        var project = FindProject(options.Project ?? Directory.GetCurrentDirectory(), explicitPath: options.Project is not null);
        return await BuildProjectAsync(project, progress, cancellationToken).ConfigureAwait(false) with { RuntimeDefaults = defaults };
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

    private static async Task<WorkerCommand> BuildProjectAsync(string project, TextWriter progress, CancellationToken cancellationToken)
    {
        var dotnet = DotnetHostPath();
        await progress.WriteLineAsync($"kestrel-cluster: building {project} (Release)").ConfigureAwait(false);
        var (buildExit, buildOutput) = await RunToolAsync(dotnet, ["build", project, "-c", "Release", "-nologo", "-v", "q", "-clp:NoSummary"], cancellationToken).ConfigureAwait(false);
        if (buildExit != 0)
        {
            await progress.WriteAsync(buildOutput).ConfigureAwait(false);
            throw new CommandLineException($"the build of {project} failed (exit code {buildExit}).");
        }

        var (propertyExit, targetPath) = await RunToolAsync(dotnet, ["msbuild", project, "-getProperty:TargetPath", "-p:Configuration=Release", "-nologo"], cancellationToken).ConfigureAwait(false);
        targetPath = targetPath.Trim();
        if (propertyExit != 0 || !File.Exists(targetPath))
        {
            throw new CommandLineException($"could not find the built app of {project} (looked for '{targetPath}').");
        }

        return new WorkerCommand(dotnet, [targetPath], Path.GetDirectoryName(project)!, Path.GetFileNameWithoutExtension(project));
    }

    private static async Task<(int ExitCode, string Output)> RunToolAsync(string fileName, IEnumerable<string> arguments, CancellationToken cancellationToken)
    {
        var startInfo = new ProcessStartInfo(fileName) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        using var process = Process.Start(startInfo) ?? throw new CommandLineException($"could not start {fileName}.");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        try
        {
            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        return (process.ExitCode, await stdout.ConfigureAwait(false) + await stderr.ConfigureAwait(false));
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
