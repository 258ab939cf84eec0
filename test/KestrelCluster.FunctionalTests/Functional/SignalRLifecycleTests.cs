using System.Diagnostics;
using KestrelCluster.Tests.Infrastructure;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

// The chat app with AddKestrelCluster() run alone (a plain SignalR app), and a cluster's rolling reload with
// connected clients: the old workers close their hub connections at the start of the drain, so clients reconnect
// to the new generation at once instead of after the drain window.
public sealed class SignalRLifecycleTests(ITestOutputHelper output)
{
    private static readonly TimeSpan DeliveryTimeout = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task Standalone_ChatAppWithTheBackplane_WorksAsAPlainSignalRApp()
    {
        await using var app = await StandaloneProcess.StartAsync(output, TestPaths.ChatAppDll);
        var clients = await ChatClient.ConnectManyAsync(app.Address.Port, 4);
        try
        {
            Assert.All(clients, c => Assert.Equal(0, c.Worker.WorkerId));
            var text = "hello-" + Guid.NewGuid().ToString("N");
            await clients[0].InvokeAsync("Send", text);
            await Wait.UntilAsync(() => clients.All(c => c.Received(text)), DeliveryTimeout);

            var group = "g-" + Guid.NewGuid().ToString("N");
            await clients[1].InvokeAsync("AddToGroup", clients[2].Worker.ConnectionId, group);
            var toGroup = "group-" + Guid.NewGuid().ToString("N");
            await clients[0].InvokeAsync("SendGroup", group, toGroup);
            var toUser = "user-" + Guid.NewGuid().ToString("N");
            await clients[0].InvokeAsync("SendUser", clients[3].User, toUser);
            await Wait.UntilAsync(() => clients[2].Received(toGroup) && clients[3].Received(toUser), DeliveryTimeout);
            Assert.Equal($"{clients[1].User} answers how", await clients[0].InvokeAsync<string>("Ask", clients[1].Worker.ConnectionId, "how"));

            var sentinel = "sentinel-" + Guid.NewGuid().ToString("N");
            await clients[0].InvokeAsync("Send", sentinel);
            await Wait.UntilAsync(() => clients.All(c => c.Received(sentinel)), DeliveryTimeout);
            Assert.Single(clients, c => c.Received(toGroup));
            Assert.Single(clients, c => c.Received(toUser));
            Assert.DoesNotContain("fail:", app.Output);
        }
        finally
        {
            await ChatClient.DisposeAllAsync(clients);
        }
    }

    [Fact]
    public async Task RollingReload_TwentyConnectedClients_ReconnectToTheNewWorkersBeforeTheDrainWindowEnds()
    {
        // A drain window longer than the wait below: clients must be let go at its start, not at its end.
        await using var cluster = await ClusterRun.StartAppReadyAsync(output, TestPaths.ChatAppDll, new Dictionary<string, string> { ["CHAT_DRAIN_SECONDS"] = "20" });
        var clients = await ChatClient.ConnectManyAsync(cluster.Port, 20, reconnect: true);
        try
        {
            var before = clients.Select(c => c.Worker.Pid).ToHashSet();
            Assert.Equal(2, before.Count);

            var (exitCode, _, stderr) = await cluster.RunCliAsync(TimeSpan.FromMinutes(3), "reload");
            Assert.True(exitCode == 0, $"reload failed: {stderr}");
            var reloaded = Stopwatch.StartNew();

            // Every client is connected again, to a worker of the new generation.
            try
            {
                await Wait.UntilAsync(async () =>
                {
                    foreach (var client in clients)
                    {
                        if (client.Connection.State != HubConnectionState.Connected)
                        {
                            return false;
                        }

                        try
                        {
                            await client.RefreshAsync();
                        }
                        catch (Exception ex) when (ex is IOException or InvalidOperationException or OperationCanceledException or HubException)
                        {
                            return false;
                        }

                        if (before.Contains(client.Worker.Pid))
                        {
                            return false;
                        }
                    }

                    return true;
                }, TimeSpan.FromSeconds(12));
            }
            catch (TimeoutException)
            {
                var stuck = clients.Where(c => c.Connection.State != HubConnectionState.Connected || before.Contains(c.Worker.Pid));
                Assert.Fail($"{stuck.Count()} of 20 clients were not on a new worker {reloaded.Elapsed.TotalSeconds:0.0} s after the reload: {string.Join(", ", stuck.Select(c => $"{c.User} {c.Connection.State} pid {c.Worker.Pid}"))}");
            }

            output.WriteLine($"all 20 clients on new workers {reloaded.Elapsed.TotalSeconds:0.0} s after reload answered");
            Assert.All(clients, c => Assert.True(c.Reconnects >= 1, $"{c.User} never reconnected"));
            Assert.Equal(2, clients.Select(c => c.Worker.Pid).Distinct().Count());

            var text = "after-reload-" + Guid.NewGuid().ToString("N");
            await clients[7].InvokeAsync("Send", text);
            await Wait.UntilAsync(() => clients.All(c => c.Received(text)), DeliveryTimeout);

            // The old workers ended their drain because no connection was left, not because the window ran out.
            Assert.True(await ProcessInfo.WaitUntilGoneAsync(before, TimeSpan.FromSeconds(15)), "an old worker was still running 15 s after its clients left");
            Assert.DoesNotContain(cluster.Lines, l => l.Contains("The drain window ended after"));
        }
        finally
        {
            await ChatClient.DisposeAllAsync(clients);
        }
    }
}
