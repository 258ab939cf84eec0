using System.Net;
using System.Net.Sockets;
using System.Text;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

public sealed class BalanceModeTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ConditionTimeout = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Sticky_ThousandConnectionsFromEightLoopbackAddresses_EachAddressAlwaysSameWorker()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2, extraArguments: ["--balance", "sticky"]);
        var addresses = Enumerable.Range(1, 8).Select(i => IPAddress.Parse($"127.0.0.{i}")).ToList();

        var seen = addresses.ToDictionary(a => a, _ => new Dictionary<int, int>());
        // A random order: a fixed rotation of addresses would look sticky under round-robin too.
        var random = new Random(5);
        for (var i = 0; i < 1000; i++)
        {
            var address = addresses[random.Next(addresses.Count)];
            var pid = await GetPidFromAsync(address, cluster.Port);
            seen[address][pid] = seen[address].GetValueOrDefault(pid) + 1;
        }

        var summary = string.Join("; ", seen.Select(s => $"{s.Key} → {string.Join(", ", s.Value.Select(p => $"pid {p.Key}×{p.Value}"))}"));
        output.WriteLine(summary);
        Assert.All(seen.Values, pids => Assert.Single(pids));
        Assert.Equal(1000, seen.Values.Sum(p => p.Values.Sum()));
        // Eight addresses do not all hash to one of the two workers.
        Assert.Equal(2, seen.Values.Select(p => p.Keys.Single()).Distinct().Count());
        Assert.All(seen.Values, pids => Assert.Contains(pids.Keys.Single(), cluster.WorkerPids));
    }

    [Fact]
    public async Task Sticky_AfterRollingReload_EachAddressStaysWithItsWorkerSlot()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2, extraArguments: ["--balance", "sticky"]);
        var addresses = Enumerable.Range(1, 8).Select(i => IPAddress.Parse($"127.0.0.{i}")).ToList();
        var before = new Dictionary<IPAddress, string>();
        foreach (var address in addresses)
        {
            before[address] = await GetWorkerIdFromAsync(address, cluster.Port);
        }

        var (exitCode, _, stderr) = await cluster.RunCliAsync(TimeSpan.FromSeconds(90), "reload");
        Assert.True(exitCode == 0, stderr);

        foreach (var address in addresses)
        {
            Assert.Equal(before[address], await GetWorkerIdFromAsync(address, cluster.Port));
        }
    }

    [Fact]
    public async Task LeastConnections_OneWorkerHoldsConnections_NewConnectionsGoToTheOther()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 2, extraArguments: ["--balance", "least-connections"]);
        var baseAddress = $"http://127.0.0.1:{cluster.Port}";
        var held = new List<(HttpClient Client, int Pid)>();
        try
        {
            for (var i = 0; i < 20; i++)
            {
                var client = Http.KeepAliveClient(baseAddress);
                held.Add((client, await Http.GetPidAsync(client)));
            }

            var pids = held.Select(h => h.Pid).Distinct().ToList();
            Assert.Equal(2, pids.Count);
            Assert.All(pids, pid => Assert.Equal(10, held.Count(h => h.Pid == pid)));

            // The clients of one worker leave; the other worker keeps its 10 open.
            var emptied = pids[1];
            foreach (var h in held.Where(h => h.Pid == emptied).ToList())
            {
                h.Client.Dispose();
                held.Remove(h);
            }

            await WaitForAsync(async () =>
            {
                var workers = await cluster.ListAsync();
                return workers.Single(w => w.Pid == emptied).OpenConnections == 0 && workers.Single(w => w.Pid == pids[0]).OpenConnections == 10;
            });

            // Round-robin would split these 5/5; least-connections fills the emptied worker first.
            var next = new List<int>();
            for (var i = 0; i < 10; i++)
            {
                var client = Http.KeepAliveClient(baseAddress);
                var pid = await Http.GetPidAsync(client);
                held.Add((client, pid));
                next.Add(pid);
            }

            Assert.All(next, pid => Assert.Equal(emptied, pid));
        }
        finally
        {
            held.ForEach(h => h.Client.Dispose());
        }
    }

    private static async Task WaitForAsync(Func<Task<bool>> condition)
    {
        using var timeout = new CancellationTokenSource(ConditionTimeout);
        while (!await condition())
        {
            await Task.Delay(200, timeout.Token);
        }
    }

    // One HTTP/1.0 request (no chunked body) on a new connection from the given loopback source address.
    private static async Task<string> GetFromAsync(IPAddress source, int port, string path)
    {
        using var timeout = new CancellationTokenSource(Http.RequestTimeout);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(source, 0));
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), timeout.Token);
        await socket.SendAsync(Encoding.ASCII.GetBytes($"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"), timeout.Token);
        using var stream = new NetworkStream(socket);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var response = await reader.ReadToEndAsync(timeout.Token);
        Assert.StartsWith("HTTP/1.1 200", response);
        return response[(response.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..];
    }

    private static async Task<int> GetPidFromAsync(IPAddress source, int port)
    {
        var body = await GetFromAsync(source, port, "/");
        Assert.StartsWith("Hello from ", body);
        return int.Parse(body["Hello from ".Length..]);
    }

    private static async Task<string> GetWorkerIdFromAsync(IPAddress source, int port)
    {
        var body = await GetFromAsync(source, port, "/cluster");
        using var json = System.Text.Json.JsonDocument.Parse(body);
        return json.RootElement.GetProperty("workerId").GetString()!;
    }
}
