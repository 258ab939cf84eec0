using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using KestrelCluster.Tests.Infrastructure;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

// Request-aware affinity (issue 14): a SignalR app clustered with default settings. Negotiate and the transport
// requests that follow it must reach the same worker, or the WebSocket gets 404 and the client falls back (or,
// WebSockets-only, fails). Every client here comes from 127.0.0.1, one address: affinity by client address
// (--balance sticky) would put them all on one worker, so each test also checks that both workers got clients.
public sealed class AffinityTests(ITestOutputHelper output)
{
    private const int Clients = 20;
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(60);

    private sealed record WhoAmI(int Pid, string Transport);

    [Fact]
    public async Task ChatHub_DefaultTransports_EveryClientConnectsOverWebSockets()
    {
        await using var cluster = await StartChatAsync();

        var answers = await ConnectClientsAsync(cluster.Port, transports: null);

        Assert.All(answers, a => Assert.Equal("WebSockets", a.Transport));
        AssertSpreadOverWorkers(cluster, answers);
    }

    // Each accept thread keeps its own connections waiting for their first request (--accept-threads).
    [Fact]
    public async Task ChatHub_TwoAcceptThreads_EveryClientConnectsOverWebSockets()
    {
        await using var cluster = await StartChatAsync("--accept-threads", "2");

        var answers = await ConnectClientsAsync(cluster.Port, transports: null);

        Assert.All(answers, a => Assert.Equal("WebSockets", a.Transport));
        AssertSpreadOverWorkers(cluster, answers);
    }

    [Fact]
    public async Task ChatHub_WebSocketsOnlyAfterNegotiate_EveryClientConnects()
    {
        await using var cluster = await StartChatAsync();

        var answers = await ConnectClientsAsync(cluster.Port, HttpTransportType.WebSockets);

        Assert.All(answers, a => Assert.Equal("WebSockets", a.Transport));
        AssertSpreadOverWorkers(cluster, answers);
    }

    [Theory]
    [InlineData(HttpTransportType.ServerSentEvents)]
    [InlineData(HttpTransportType.LongPolling)]
    public async Task ChatHub_HttpTransports_EveryClientConnectsAndIsAnswered(HttpTransportType transport)
    {
        await using var cluster = await StartChatAsync();

        // Long polling and SSE send over further requests, on new connections when the client's pool has none idle.
        var answers = await ConnectClientsAsync(cluster.Port, transport, invocations: 5);

        Assert.All(answers, a => Assert.Equal(transport.ToString(), a.Transport));
        AssertSpreadOverWorkers(cluster, answers);
    }

    [Fact]
    public async Task ChatHub_AffinityTurnsOnByItself_AppWithoutHubsKeepsPlainDistribution()
    {
        await using (var chat = await StartChatAsync())
        {
            Assert.Contains(chat.Lines, l => l.Contains("Request-aware affinity on"));
        }

        await using var hello = await ClusterRun.StartReadyAsync(output, workers: 2);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{hello.Port}");
        Assert.StartsWith("Hello", await client.GetStringAsync("/"));
        Assert.DoesNotContain(hello.Lines, l => l.Contains("Request-aware affinity"));
    }

    [Fact]
    public async Task ChatHub_AffinityOff_NoAffinity()
    {
        await using var chat = await StartChatAsync("--affinity", "off");

        using var client = Http.NewConnectionClient($"http://127.0.0.1:{chat.Port}");
        Assert.StartsWith("Hello", await client.GetStringAsync("/"));
        Assert.DoesNotContain(chat.Lines, l => l.Contains("Request-aware affinity on"));
    }

    [Fact]
    public async Task ChatHub_ClientsThatSendNothingYet_DoNotHoldUpOthersAndAreServedWhenTheyDo()
    {
        await using var cluster = await StartChatAsync();

        // More silent connections than the supervisor keeps waiting for their first bytes.
        var silent = new List<Socket>();
        try
        {
            for (var i = 0; i < 600; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                silent.Add(socket);
                await socket.ConnectAsync(System.Net.IPAddress.Loopback, cluster.Port);
            }

            using var client = Http.NewConnectionClient($"http://127.0.0.1:{cluster.Port}");
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            Assert.StartsWith("Hello", await client.GetStringAsync("/", timeout.Token));

            // Whatever the supervisor did with them meanwhile, a request they send now is answered.
            foreach (var socket in silent.Take(10))
            {
                await socket.SendAsync(Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"), SocketFlags.None, timeout.Token);
                var buffer = new byte[512];
                var read = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
                Assert.StartsWith("HTTP/1.1 200", Encoding.ASCII.GetString(buffer, 0, read));
            }
        }
        finally
        {
            foreach (var socket in silent)
            {
                socket.Dispose();
            }
        }
    }

    private Task<ClusterRun> StartChatAsync(params string[] extraArguments) => ClusterRun.StartAppReadyAsync(output, TestPaths.ChatAppDll, null, extraArguments);

    // Starts every client at once, asks each which worker and transport serve it, and stops them.
    private async Task<IReadOnlyList<WhoAmI>> ConnectClientsAsync(int port, HttpTransportType? transports, int invocations = 1)
    {
        using var timeout = new CancellationTokenSource(ConnectTimeout);
        var connections = Enumerable.Range(0, Clients).Select(_ => new HubConnectionBuilder()
            .WithUrl($"http://127.0.0.1:{port}/chat", options =>
            {
                if (transports is { } only)
                {
                    options.Transports = only;
                }
            })
            .Build()).ToList();
        try
        {
            var answers = await Task.WhenAll(connections.Select(async connection =>
            {
                await connection.StartAsync(timeout.Token);
                WhoAmI? answer = null;
                for (var i = 0; i < invocations; i++)
                {
                    answer = await connection.InvokeAsync<WhoAmI>("WhoAmI", timeout.Token);
                }

                return answer!;
            }));
            output.WriteLine(string.Join(", ", answers.GroupBy(a => (a.Pid, a.Transport)).Select(g => $"pid {g.Key.Pid} {g.Key.Transport}×{g.Count()}")));
            return answers;
        }
        finally
        {
            foreach (var connection in connections)
            {
                await connection.DisposeAsync();
            }
        }
    }

    private static void AssertSpreadOverWorkers(ClusterRun cluster, IReadOnlyList<WhoAmI> answers)
    {
        Assert.Equal(Clients, answers.Count);
        Assert.All(answers, a => Assert.Contains(a.Pid, cluster.WorkerPids));
        Assert.Equal(2, answers.Select(a => a.Pid).Distinct().Count());
    }
}
