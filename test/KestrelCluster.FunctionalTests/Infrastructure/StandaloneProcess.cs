using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Infrastructure;

/// <summary>
/// An app run alone, as `dotnet App.dll --urls http://127.0.0.1:0` runs it: no supervisor, no KESTREL_CLUSTER_*
/// variables. Its output goes to the test log; the process is killed by pid on dispose.
/// </summary>
internal sealed partial class StandaloneProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ITestOutputHelper? _output;
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly TaskCompletionSource<Uri> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private StandaloneProcess(Process process, ITestOutputHelper? output)
    {
        _process = process;
        _output = output;
    }

    public Uri Address { get; private set; } = null!;

    public string Output => string.Join('\n', _lines);

    public static async Task<StandaloneProcess> StartAsync(ITestOutputHelper? output, string dll)
    {
        var startInfo = new ProcessStartInfo(TestPaths.Dotnet)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetDirectoryName(dll),
        };
        startInfo.ArgumentList.Add(dll);
        startInfo.ArgumentList.Add("--urls");
        startInfo.ArgumentList.Add("http://127.0.0.1:0");
        foreach (var key in startInfo.Environment.Keys.Where(k => k.StartsWith("KESTREL_CLUSTER_", StringComparison.Ordinal) || k == "ASPNETCORE_URLS").ToList())
        {
            startInfo.Environment.Remove(key);
        }

        var process = new Process { StartInfo = startInfo, EnableRaisingEvents = true };
        var app = new StandaloneProcess(process, output);
        process.OutputDataReceived += (_, e) => app.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => app.OnLine(e.Data);
        process.Exited += (_, _) => app._listening.TrySetException(new InvalidOperationException("the app exited before it was listening"));
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            app.Address = await app._listening.Task.WaitAsync(ClusterRun.StartTimeout);
            return app;
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        _lines.Enqueue(line);
        try
        {
            _output?.WriteLine($"[app] {line}");
        }
        catch (InvalidOperationException)
        {
            // The test has finished; its output helper is closed.
        }

        if (ListeningPattern().Match(line) is { Success: true } match)
        {
            _listening.TrySetResult(new Uri(match.Groups[1].Value));
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            _process.Kill(entireProcessTree: false);
        }
        catch (InvalidOperationException)
        {
            // Already exited.
        }

        await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        _process.Dispose();
    }

    [GeneratedRegex(@"Now listening on: (http://\S+)")]
    private static partial Regex ListeningPattern();
}
