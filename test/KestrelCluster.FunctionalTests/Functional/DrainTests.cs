using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

public sealed class DrainTests(ITestOutputHelper output)
{
    private static readonly TimeSpan CliTimeout = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task ReloadsAndScaleDown_KeepAliveClientsThatNeverRetry_NoRequestFails()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2);
        using var stop = new CancellationTokenSource();
        var load = KeepAliveLoad.Start(cluster.Port, connections: 16, stop.Token);
        await Wait.UntilAsync(() => load.Answered > 200, TimeSpan.FromSeconds(30));

        for (var i = 0; i < 3; i++)
        {
            var (exitCode, _, stderr) = await cluster.RunCliAsync(CliTimeout, "reload");
            Assert.True(exitCode == 0, stderr);
        }

        var (scaled, _, scaleError) = await cluster.RunCliAsync(CliTimeout, "scale", "1");
        Assert.True(scaled == 0, scaleError);
        var answeredBeforeEnd = load.Answered;
        await Wait.UntilAsync(() => load.Answered > answeredBeforeEnd + 100, TimeSpan.FromSeconds(30));
        stop.Cancel();
        await load.Completion.WaitAsync(TimeSpan.FromSeconds(60));

        output.WriteLine($"answered {load.Answered}, reconnected after Connection: close {load.Closed}, failed {load.Errors.Count}: {string.Join("; ", load.Errors.Take(5))}");
        Assert.Empty(load.Errors);
        Assert.True(load.Closed > 0, "drained workers should have closed keep-alive connections with Connection: close");
    }

    // A fixed set of keep-alive connections, each sending one request after the other like wrk: a failure is
    // counted, never retried. A response with Connection: close ends the connection normally; a new one replaces it.
    private sealed class KeepAliveLoad
    {
        private long _answered;
        private long _closed;

        public long Answered => Interlocked.Read(ref _answered);

        public long Closed => Interlocked.Read(ref _closed);

        public System.Collections.Concurrent.ConcurrentQueue<string> Errors { get; } = new();

        public Task Completion { get; private set; } = Task.CompletedTask;

        public static KeepAliveLoad Start(int port, int connections, CancellationToken stop)
        {
            var load = new KeepAliveLoad();
            load.Completion = Task.WhenAll(Enumerable.Range(0, connections).Select(_ => Task.Run(() => load.ClientAsync(port, stop))));
            return load;
        }

        private async Task ClientAsync(int port, CancellationToken stop)
        {
            RawHttpConnection? connection = null;
            try
            {
                while (!stop.IsCancellationRequested)
                {
                    using var timeout = new CancellationTokenSource(Http.RequestTimeout);
                    try
                    {
                        connection ??= await RawHttpConnection.OpenAsync(port, timeout.Token);
                        var response = await connection.GetAsync("/", timeout.Token);
                        if (response.Status != 200 || !response.Body.StartsWith("Hello from ", StringComparison.Ordinal))
                        {
                            Errors.Enqueue($"HTTP {response.Status}: {response.Body}");
                        }
                        else
                        {
                            Interlocked.Increment(ref _answered);
                        }

                        if (response.ConnectionClose)
                        {
                            Interlocked.Increment(ref _closed);
                            connection.Dispose();
                            connection = null;
                        }
                    }
                    catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException or OperationCanceledException)
                    {
                        Errors.Enqueue($"{ex.GetType().Name}: {ex.Message}");
                        connection?.Dispose();
                        connection = null;
                    }
                }
            }
            finally
            {
                connection?.Dispose();
            }
        }
    }
}
