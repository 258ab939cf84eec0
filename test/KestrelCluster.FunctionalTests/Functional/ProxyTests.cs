using System.Collections.Concurrent;
using System.Net;
using System.Text.RegularExpressions;
using KestrelCluster.Tests.Infrastructure;
using Microsoft.AspNetCore.SignalR.Client;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

// The chat app behind nginx, as many sites run it: every client reaches the cluster from nginx's one address, and
// nginx may carry several clients' requests over one upstream connection. The supervisor routes each new connection
// by its first request's kc-worker cookie, so the hub's location must give each request its own upstream connection
// (no upstream keepalive); other locations may keep upstream connections alive.
public sealed class ProxyTests(ITestOutputHelper output)
{
    private const int Clients = 20;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private sealed record WhoAmI(int Pid, string Transport);

    [Fact]
    public async Task ChatBehindNginx_TwentyDefaultClients_AllOnWebSocketsOverBothWorkers_AndAMessageReachesAll()
    {
        await using var cluster = await StartChatAsync();
        await using var nginx = await Nginx.StartAsync(output, Nginx.InFrontOfCluster(cluster.Port, "/chat"));

        var inboxes = Enumerable.Range(0, Clients).Select(_ => new ConcurrentQueue<string>()).ToList();
        var connections = Enumerable.Range(0, Clients).Select(i =>
        {
            // Default transports: negotiate, then a WebSocket, falling back to SSE or long polling if that fails.
            var connection = new HubConnectionBuilder().WithUrl($"http://127.0.0.1:{nginx.Port}/chat?user=user{i}").Build();
            connection.On<string, string>("message", (_, text) => inboxes[i].Enqueue(text));
            return connection;
        }).ToList();
        try
        {
            using var timeout = new CancellationTokenSource(Timeout);
            var answers = await Task.WhenAll(connections.Select(async connection =>
            {
                await connection.StartAsync(timeout.Token);
                return await connection.InvokeAsync<WhoAmI>("WhoAmI", timeout.Token);
            }));
            output.WriteLine(string.Join(", ", answers.GroupBy(a => (a.Pid, a.Transport)).Select(g => $"pid {g.Key.Pid} {g.Key.Transport}×{g.Count()}")));

            Assert.All(answers, a => Assert.Equal("WebSockets", a.Transport));
            Assert.All(answers, a => Assert.Contains(a.Pid, cluster.WorkerPids));
            Assert.Equal(2, answers.Select(a => a.Pid).Distinct().Count());

            // The backplane: a message sent by one client reaches all twenty, on both workers.
            var text = $"hello-{Guid.NewGuid():N}";
            await connections[0].InvokeAsync("Send", text, timeout.Token);
            await Wait.UntilAsync(() => inboxes.All(i => i.Contains(text)), TimeSpan.FromSeconds(15));
        }
        finally
        {
            foreach (var connection in connections)
            {
                await connection.DisposeAsync();
            }
        }

        Assert.DoesNotContain(cluster.Lines, l => l.Contains("fail:") || l.Contains("exited unexpectedly"));
    }

    // Outside the hub, nginx keeps upstream connections alive and sends other clients' requests over them: the
    // supervisor passed each one to a worker once, and every request on it is answered there.
    [Fact]
    public async Task PlainRequestsBehindNginx_OverKeptAliveUpstreamConnections_AreAllAnswered()
    {
        await using var cluster = await StartChatAsync();
        await using var nginx = await Nginx.StartAsync(output, Nginx.InFrontOfCluster(cluster.Port, "/chat"));

        const int requests = 40;
        var answeredBy = new List<int>();
        for (var i = 0; i < requests; i++)
        {
            // A new client connection each time, with a cookie naming worker 1 half the time: nginx ignores both.
            using var client = Http.NewConnectionClient($"http://127.0.0.1:{nginx.Port}");
            using var request = new HttpRequestMessage(HttpMethod.Get, "/");
            if (i % 2 == 1)
            {
                request.Headers.Add("Cookie", "kc-worker=1");
            }

            using var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            answeredBy.Add(int.Parse((await response.Content.ReadAsStringAsync()).Replace("Hello from ", "")));
        }

        var workers = await cluster.ListAsync();
        var upstreamConnections = workers.Sum(w => w.TotalConnections);
        output.WriteLine($"{requests} requests over {upstreamConnections} upstream connections, answered by {string.Join(", ", answeredBy.GroupBy(p => p).Select(g => $"pid {g.Key}×{g.Count()}"))}");
        Assert.All(answeredBy, pid => Assert.Contains(pid, cluster.WorkerPids));
        Assert.True(upstreamConnections < requests / 2, $"nginx kept few upstream connections alive: {upstreamConnections} for {requests} requests");
    }

    private Task<ClusterRun> StartChatAsync() => ClusterRun.StartAppReadyAsync(output, TestPaths.ChatAppDll);
}
