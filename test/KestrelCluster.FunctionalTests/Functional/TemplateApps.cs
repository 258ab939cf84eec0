using KestrelCluster.Tests.Infrastructure;

namespace KestrelCluster.Tests.Functional;

/// <summary>
/// Apps made the way a user makes them, `dotnet new &lt;template&gt;` and a Release build or publish, with no reference
/// to KestrelCluster and no line added: one private folder per test class, each app created and built once.
/// </summary>
public sealed class TemplateApps : IDisposable
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromMinutes(3);

    private readonly string _root = TestPaths.NewTempDirectory();
    private readonly Dictionary<string, Task<TemplateApp>> _apps = [];
    private readonly Lock _lock = new();

    /// <summary>The app of `dotnet new <paramref name="template"/> [options]` built in Release, created on first use.</summary>
    public Task<TemplateApp> GetAsync(string template, params string[] options) => Get(template, options, publish: false, addedFiles: new Dictionary<string, string>());

    /// <summary>
    /// The app of `dotnet new <paramref name="template"/> [options]`, with <paramref name="addedFiles"/> (path in the
    /// project: content) written into it, published in Release, as a server runs it: generated static assets (the
    /// scoped CSS bundle, `_framework/blazor.web.js`, fingerprinted names) exist only in a publish's wwwroot.
    /// </summary>
    public Task<TemplateApp> GetPublishedAsync(string template, string[] options, IReadOnlyDictionary<string, string>? addedFiles = null)
        => Get(template, options, publish: true, addedFiles ?? new Dictionary<string, string>());

    private Task<TemplateApp> Get(string template, string[] options, bool publish, IReadOnlyDictionary<string, string> addedFiles)
    {
        var key = string.Join(' ', [publish ? "publish" : "build", template, .. options, .. addedFiles.Keys.Order()]);
        lock (_lock)
        {
            if (!_apps.TryGetValue(key, out var app))
            {
                app = CreateAsync(template, options, publish, addedFiles, "App" + _apps.Count);
                _apps[key] = app;
            }

            return app;
        }
    }

    private async Task<TemplateApp> CreateAsync(string template, string[] options, bool publish, IReadOnlyDictionary<string, string> addedFiles, string name)
    {
        var folder = Path.Combine(_root, name);
        await RunAsync(["new", template, .. options, "--name", name, "--output", folder], _root);
        foreach (var (path, content) in addedFiles)
        {
            File.WriteAllText(Path.Combine(folder, path), content);
        }

        var output = Path.Combine(folder, "out");
        await RunAsync([publish ? "publish" : "build", folder, "-c", "Release", "-o", output, "-nologo", "-v", "q", "-clp:NoSummary"], folder);
        // A build runs from the project folder (its wwwroot); a publish is self-contained and runs from its own folder.
        return new TemplateApp(publish ? output : folder, Path.Combine(output, name + ".dll"));
    }

    private static async Task RunAsync(IReadOnlyList<string> arguments, string workingDirectory)
    {
        var environment = ExternalCommand.NestedDotnetEnvironment();
        var (exitCode, stdout, stderr) = await ExternalCommand.RunAsync(TestPaths.Dotnet, arguments, CommandTimeout, environment, workingDirectory);
        if (exitCode != 0)
        {
            throw new InvalidOperationException($"dotnet {string.Join(' ', arguments)} failed ({exitCode}):\n{stdout}{stderr}");
        }
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>A created app: the folder to run it from (its content root) and its dll.</summary>
public sealed record TemplateApp(string Folder, string Dll);
