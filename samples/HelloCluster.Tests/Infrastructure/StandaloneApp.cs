using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace HelloCluster.Tests.Infrastructure;

/// <summary>
/// The HelloCluster sample run alone, the way `dotnet HelloCluster.dll` runs it: no supervisor, no
/// KESTREL_CLUSTER_* variables. Its output goes to the test log; the process is killed by pid and
/// awaited on dispose.
/// </summary>
public sealed partial class StandaloneApp : IAsyncDisposable
{
    public static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    public static readonly TimeSpan ExitTimeout = TimeSpan.FromSeconds(10);

    private readonly Process _process;
    private readonly ITestOutputHelper? _output;
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly TaskCompletionSource<Uri> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private StandaloneApp(Process process, ITestOutputHelper? output)
    {
        _process = process;
        _output = output;
    }

    public int Pid { get; private set; }

    /// <summary>The address from the app's own "Now listening on:" line.</summary>
    public Uri Address { get; private set; } = null!;

    public string Output => string.Join('\n', _lines);

    /// <summary>Starts `dotnet HelloCluster.dll --urls http://127.0.0.1:0` and waits until it says where it listens.</summary>
    public static async Task<StandaloneApp> StartAsync(ITestOutputHelper? output)
    {
        if (!File.Exists(SamplePaths.SampleDll))
        {
            throw new FileNotFoundException($"the sample is not built: {SamplePaths.SampleDll}");
        }

        var startInfo = new ProcessStartInfo(SamplePaths.Dotnet)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = SamplePaths.SampleDirectory,
        };
        startInfo.ArgumentList.Add(SamplePaths.SampleDll);
        startInfo.ArgumentList.Add("--urls");
        startInfo.ArgumentList.Add("http://127.0.0.1:0");

        // Not a worker: none of the supervisor's variables, above all not KESTREL_CLUSTER_CHANNEL.
        foreach (var key in startInfo.Environment.Keys.Where(k => k.StartsWith("KESTREL_CLUSTER_", StringComparison.Ordinal)).ToList())
        {
            startInfo.Environment.Remove(key);
        }

        startInfo.Environment.Remove("ASPNETCORE_URLS");

        var process = new Process { StartInfo = startInfo, EnableRaisingEvents = true };
        var app = new StandaloneApp(process, output);
        process.OutputDataReceived += (_, e) => app.OnLine(e.Data, isOutput: true);
        process.ErrorDataReceived += (_, e) => app.OnLine(e.Data, isOutput: false);
        process.Exited += (_, _) => app._listening.TrySetException(new InvalidOperationException("the app exited before it was listening"));
        process.Start();
        app.Pid = process.Id;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        process.StandardInput.Close();

        try
        {
            app.Address = await app._listening.Task.WaitAsync(StartTimeout);
            return app;
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException)
        {
            await app.DisposeAsync();
            throw new InvalidOperationException($"HelloCluster (pid {app.Pid}) did not report 'Now listening on: http://127.0.0.1:<port>' within {StartTimeout.TotalSeconds} s ({ex.Message}). Output:\n{app.Output}", ex);
        }
    }

    /// <summary>Kills the app by pid and waits until the process is gone; true when it is.</summary>
    public async Task<bool> KillAsync()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // already exited
        }

        try
        {
            await _process.WaitForExitAsync().WaitAsync(ExitTimeout);
        }
        catch (TimeoutException)
        {
            return false;
        }

        return await WaitUntilGoneAsync(Pid, ExitTimeout);
    }

    // A zombie (exited, not yet reaped) counts as gone: it holds no port and runs no code.
    public static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var state = stat[(stat.LastIndexOf(')') + 2)..][0];
            return state is not ('Z' or 'X');
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static async Task<bool> WaitUntilGoneAsync(int pid, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (IsAlive(pid))
        {
            if (DateTime.UtcNow >= deadline)
            {
                return false;
            }

            await Task.Delay(50);
        }

        return true;
    }

    private void OnLine(string? line, bool isOutput)
    {
        if (line is null)
        {
            if (isOutput)
            {
                _listening.TrySetException(new InvalidOperationException("the app closed its output before it was listening"));
            }

            return;
        }

        _lines.Enqueue(line);
        if (isOutput && ListeningPattern().Match(line) is { Success: true } match)
        {
            _listening.TrySetResult(new Uri(match.Groups[1].Value));
        }

        try
        {
            _output?.WriteLine(line);
        }
        catch (InvalidOperationException)
        {
            // the test is over
        }
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process.Dispose();
    }

    [GeneratedRegex(@"Now listening on: (http://127\.0\.0\.1:\d+)\s*$")]
    private static partial Regex ListeningPattern();
}
