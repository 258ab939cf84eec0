using System.Text.RegularExpressions;
using KestrelCluster.Load;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Reliability;

// The supervisor's stdout is a pipe nobody reads for a while (a paused terminal, Docker's blocking log
// driver, `| tee` on a slow disk) while the workers log every request.
public sealed class BlockedStdoutTests(ITestOutputHelper output)
{
    private static readonly TimeSpan HeartbeatTimeout = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan Prompt = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Stdout_NotReadWhileWorkersLogEveryRequest_SupervisorAnswersServesKeepsWorkersAndCountsDroppedLines()
    {
        // Every request logs "Request starting" and "Request finished": plenty of output.
        var environment = new Dictionary<string, string> { ["Logging__LogLevel__Microsoft.AspNetCore"] = "Information" };
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2, environment: environment,
            extraArguments: ["--heartbeat-timeout", HeartbeatTimeout.TotalSeconds.ToString()]);
        var pids = (await cluster.ListAsync()).Select(w => w.Pid).Order().ToList();
        var baseAddress = $"http://127.0.0.1:{cluster.Port}";
        cluster.PauseStdout();

        var load = LoadRunner.RunAsync(new Uri(baseAddress + "/"), keepAliveClients: 4, newConnectionClients: 0, HeartbeatTimeout * 4);
        using var client = Http.NewConnectionClient(baseAddress);
        client.Timeout = Prompt;
        var polls = 0;
        while (!load.IsCompleted)
        {
            // A list that takes longer than Prompt fails here with a TimeoutException.
            var (exitCode, _, stderr) = await cluster.RunCliAsync(Prompt, "list", "--json");
            Assert.True(exitCode == 0, $"list failed while stdout was blocked: {stderr}");
            await Http.GetPidAsync(client);
            Assert.Equal(pids, cluster.LiveWorkerPids().Order());
            polls++;
            // Paces the polls; the loop ends with the load.
            await Task.WhenAny(load, Task.Delay(TimeSpan.FromSeconds(1)));
        }

        var result = await load.WaitAsync(TimeSpan.FromSeconds(60));
        output.WriteLine($"{result}; {polls} polls of list and GET /");
        Assert.Equal(0, result.Failed);
        Assert.True(polls >= 5, $"only {polls} polls in {result.Elapsed.TotalSeconds:0} s");
        Assert.Equal(pids, (await cluster.ListAsync()).Select(w => w.Pid).Order());

        cluster.ResumeStdout();
        await cluster.WaitForLineAsync(new Regex(@"^kestrel-cluster: dropped [1-9]\d* lines of output \(stdout was blocked\)$"), TimeSpan.FromSeconds(30));
        await cluster.WaitForLineAsync(new Regex(@"Dropped [1-9]\d* lines of output: stdout was blocked"), TimeSpan.FromSeconds(30));
        Assert.DoesNotContain(cluster.Lines, l => l.Contains("sent no heartbeat", StringComparison.Ordinal));
    }
}
