using System.ComponentModel;
using System.Diagnostics;
using KestrelCluster.Supervisor.Runtime;

namespace KestrelCluster.Supervisor.Workers;

/// <summary>One publish: the command a new generation's workers run, or why there is none (the build's first errors).</summary>
internal sealed record PublishResult(WorkerCommand? Command, string? Error, string Output = "")
{
    public static PublishResult Failed(string error, string output = "") => new(null, error, output);
}

/// <summary>Makes the app a new generation runs (`--project`). A reload waits for it and is refused when it fails.</summary>
internal interface IAppPublisher
{
    /// <summary>What is published, for log lines and messages.</summary>
    string Source { get; }

    /// <summary>Publishes into a new folder of its own. Runs off the supervisor loop; a failed build is a result, not an exception.</summary>
    Task<PublishResult> PublishAsync(int generation, CancellationToken cancellationToken);

    /// <summary>Removes what <see cref="PublishAsync"/> made for <paramref name="command"/>, once no worker runs it.</summary>
    void Delete(WorkerCommand command);
}

// `dotnet publish -c Release` into a folder per generation below the cluster's runtime folder. Workers run the app
// as it runs when published: the build output in bin/ serves generated static assets (the scoped CSS bundle,
// _framework/blazor.web.js) only in Development, and a later build overwrites it under running workers.
// The runtime folder is private (0700), removed when the cluster stops, and unique per cluster name, so leftovers
// of a killed supervisor can be cleared at start. It is often a tmpfs (/run/user/<uid>, about 10% of RAM): a
// publish takes about 1 MB for a small app and the size of its dependencies for a large one, twice during a
// reload; a publish that finds no room fails like any other build, and the reload is refused.
internal sealed class ProjectPublisher : IAppPublisher, IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(5);
    private const int ErrorLinesShown = 3;
    private readonly string _project;
    private readonly string _root;
    private readonly IReadOnlyDictionary<string, string> _runtimeDefaults;
    private int _publishes;

    public ProjectPublisher(string project, string root, IReadOnlyDictionary<string, string> runtimeDefaults)
    {
        _project = project;
        _root = root;
        _runtimeDefaults = runtimeDefaults;
        if (Directory.Exists(root))
        {
            // Left by a supervisor of this name that was killed: no worker of it runs any more.
            Directory.Delete(root, recursive: true);
        }

        Directory.CreateDirectory(root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    public string Source => _project;

    private string AppName => Path.GetFileNameWithoutExtension(_project);

    public async Task<PublishResult> PublishAsync(int generation, CancellationToken cancellationToken)
    {
        // Never reused: a failed reload gives its generation number back, while its folder may still be being removed.
        var folder = Path.Combine(_root, $"{generation}-{Interlocked.Increment(ref _publishes)}");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Timeout);
        int exitCode;
        string output;
        try
        {
            // -nodeReuse:false: no MSBuild node outlives the publish, holding files or counting as a child of ours.
            (exitCode, output) = await RunAsync(WorkerCommand.DotnetHostPath(), ["publish", _project, "-c", "Release", "-o", folder, "-nologo", "-v", "q", "-clp:NoSummary", "-nodeReuse:false"], timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            TryDelete(folder);
            return PublishResult.Failed($"the publish did not finish within {Timeout.TotalMinutes} minutes");
        }
        catch (Exception ex) when (ex is Win32Exception or IOException)
        {
            TryDelete(folder);
            return PublishResult.Failed($"cannot run dotnet publish: {ex.Message}");
        }
        catch (OperationCanceledException)
        {
            TryDelete(folder);
            throw;
        }

        if (exitCode != 0)
        {
            TryDelete(folder);
            return PublishResult.Failed(FirstErrors(output) ?? $"dotnet publish exited with code {exitCode}", output);
        }

        if (FindApp(folder) is not { } dll)
        {
            TryDelete(folder);
            return PublishResult.Failed($"the publish output holds no app ({AppName}.dll with its runtimeconfig.json); is {Path.GetFileName(_project)} a web app?", output);
        }

        // Working folder = the publish folder: a published app's content root is its own folder, where appsettings*.json,
        // wwwroot and the static assets manifest are copied (as `cd publish && dotnet App.dll`). The project folder would
        // give it the source wwwroot, without the generated assets the manifest names.
        var variables = new Dictionary<string, string?> { ["PWD"] = folder };
        return new PublishResult(new WorkerCommand(WorkerCommand.DotnetHostPath(), [dll], folder, AppName, variables) { RuntimeDefaults = _runtimeDefaults, PublishFolder = folder }, null, output);
    }

    public void Delete(WorkerCommand command)
    {
        if (command.PublishFolder is { } folder && Directory.Exists(folder))
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    public void Dispose() => TryDelete(_root);

    // The app's dll: <project name>.dll, else the one dll with a runtimeconfig.json (an AssemblyName of its own).
    private string? FindApp(string folder)
    {
        var byName = Path.Combine(folder, AppName + ".dll");
        if (File.Exists(Path.ChangeExtension(byName, ".runtimeconfig.json")) && File.Exists(byName))
        {
            return byName;
        }

        var configs = Directory.GetFiles(folder, "*.runtimeconfig.json");
        var dll = configs.Length == 1 ? configs[0][..^".runtimeconfig.json".Length] + ".dll" : null;
        return dll is not null && File.Exists(dll) ? dll : null;
    }

    // The build's first error lines, without the project's folder and the "[App.csproj]" MSBuild appends.
    private string? FirstErrors(string output)
    {
        var folder = Path.GetDirectoryName(_project) + "/";
        var errors = output.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Where(l => l.Contains(": error ", StringComparison.Ordinal) || l.StartsWith("error", StringComparison.Ordinal))
            .Select(l => l.EndsWith(']') && l.LastIndexOf(" [", StringComparison.Ordinal) is > 0 and var bracket ? l[..bracket] : l)
            .Select(l => l.Replace(folder, "", StringComparison.Ordinal))
            .Distinct()
            .ToList();
        return errors.Count == 0 ? null : string.Join("; ", errors.Take(ErrorLinesShown)) + (errors.Count > ErrorLinesShown ? $" (and {errors.Count - ErrorLinesShown} more)" : "");
    }

    private static void TryDelete(string folder)
    {
        try
        {
            if (Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // a folder we cannot remove is left; the next start of this cluster clears it
        }
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(string fileName, IEnumerable<string> arguments, CancellationToken cancellationToken)
    {
        var startInfo = new ProcessStartInfo(fileName) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        // The build gets what a worker gets of the supervisor's own settings: none.
        SupervisorProcessSettings.RemoveSupervisorOnly(startInfo.Environment);

        using var process = Process.Start(startInfo) ?? throw new IOException($"could not start {fileName}.");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        try
        {
            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            try
            {
                // Killed processes write nothing more: the folder can be removed once they are gone.
                await process.WaitForExitAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10), CancellationToken.None).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // beyond our reach; the folder is removed as far as it can be
            }

            throw;
        }

        return (process.ExitCode, await stdout.ConfigureAwait(false) + await stderr.ConfigureAwait(false));
    }
}
