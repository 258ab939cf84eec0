using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Reliability;

// Clients that connect and send nothing, or dribble a byte a second, cost the supervisor nothing: it hands each
// connection to a worker without reading it, so its accept loop and everyone else's requests go on as before.
public sealed class SlowClientTests(ITestOutputHelper output)
{
    private const int IdleConnections = 500;
    private const int DribblingConnections = 20;
    private const int Samples = 300;

    [Fact]
    public async Task FiveHundredIdleAndTwentyDribblingConnections_NormalClientsP99StaysWithinTwiceIdleBaseline()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2);
        var target = new IPEndPoint(IPAddress.Loopback, cluster.Port);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");
        await MeasureAsync(client, 500);
        var baseline = await MeasureAsync(client, Samples);

        var idle = new List<Socket>();
        var dribblers = new List<Socket>();
        using var stopDribbling = new CancellationTokenSource();
        try
        {
            var acceptWatch = Stopwatch.StartNew();
            for (var i = 0; i < IdleConnections; i++)
            {
                idle.Add(await ConnectAsync(target));
            }

            // Every one was handed to a worker (Kestrel counts it open) although none sent a byte.
            await Wait.UntilAsync(async () => (await cluster.ListAsync()).Sum(w => w.OpenConnections) >= IdleConnections, TimeSpan.FromSeconds(30));
            var handedOff = acceptWatch.Elapsed;
            for (var i = 0; i < DribblingConnections; i++)
            {
                dribblers.Add(await ConnectAsync(target));
            }

            var dribbling = DribbleAsync(dribblers, stopDribbling.Token);
            var loaded = await MeasureAsync(client, Samples);
            stopDribbling.Cancel();
            await dribbling;

            output.WriteLine($"{IdleConnections} idle connections handed to workers within {handedOff.TotalMilliseconds:0} ms");
            output.WriteLine($"new-connection request latency, idle cluster: {baseline}");
            output.WriteLine($"with {IdleConnections} idle and {DribblingConnections} one-byte-a-second clients: {loaded}");
            output.WriteLine($"p99 ratio {loaded.P99 / baseline.P99:0.00}");
            // 2× the idle p99, with a floor of 25 ms for the noise of a shared 2-core machine.
            Assert.True(loaded.P99 <= Math.Max(2 * baseline.P99, baseline.P99 + 25), $"p99 {loaded.P99:0.0} ms vs {baseline.P99:0.0} ms idle");
            Assert.False(cluster.HasExited);
        }
        finally
        {
            stopDribbling.Cancel();
            foreach (var socket in idle.Concat(dribblers))
            {
                socket.Dispose();
            }
        }
    }

    private static async Task<Socket> ConnectAsync(IPEndPoint target)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(target).WaitAsync(TimeSpan.FromSeconds(10));
        return socket;
    }

    // One byte a second on each connection, of a request that is never finished in the test's time.
    private static async Task DribbleAsync(List<Socket> sockets, CancellationToken cancellationToken)
    {
        var request = Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + new string('a', 200));
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        for (var i = 0; i < request.Length; i++)
        {
            foreach (var socket in sockets)
            {
                try
                {
                    await socket.SendAsync(request.AsMemory(i, 1), SocketFlags.None);
                }
                catch (SocketException)
                {
                    // closed by the worker: that is its call
                }
            }

            try
            {
                await timer.WaitForNextTickAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private static async Task<Latency> MeasureAsync(HttpClient client, int count)
    {
        var samples = new double[count];
        for (var i = 0; i < count; i++)
        {
            var started = Stopwatch.GetTimestamp();
            await Http.GetPidAsync(client);
            samples[i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        }

        Array.Sort(samples);
        return new Latency(samples[count / 2], samples[(int)Math.Ceiling(count * 0.99) - 1], samples[^1]);
    }


    private sealed record Latency(double P50, double P99, double Max)
    {
        public override string ToString() => $"p50 {P50:0.00} ms, p99 {P99:0.00} ms, max {Max:0.00} ms";
    }
}
