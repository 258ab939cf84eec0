using System.Text.RegularExpressions;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

// A hub in a cluster behaves as in one process (AddSignalR().AddKestrelCluster()): Clients.All, groups, users and
// single connections reach clients on every worker. Half the clients speak MessagePack, half JSON.
public sealed class SignalRBackplaneTests(SignalRBackplaneTests.ChatCluster cluster, ITestOutputHelper output) : IClassFixture<SignalRBackplaneTests.ChatCluster>
{
    private static readonly TimeSpan DeliveryTimeout = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task ClientsAll_MessageFromAnyClient_ReachesAllTwentyOnBothWorkers()
    {
        var clients = await ConnectSpreadAsync(20);
        try
        {
            foreach (var sender in new[] { clients[0], clients.First(c => c.Worker.Pid != clients[0].Worker.Pid) })
            {
                var text = Unique("all");
                await sender.InvokeAsync("Send", text);
                await WaitAllReceivedAsync(clients, text);
            }

            // Others and AllExcept: everyone but the excluded, wherever they are.
            var others = Unique("others");
            await clients[3].InvokeAsync("SendOthers", others);
            var excluded = new[] { clients[4].Worker.ConnectionId, clients[5].Worker.ConnectionId };
            var allExcept = Unique("all-except");
            await clients[3].InvokeAsync("SendAllExcept", excluded, allExcept);
            await WaitAllReceivedAsync(clients.Where(c => c != clients[3]), others);
            await WaitAllReceivedAsync(clients.Skip(6).Concat(clients.Take(4)), allExcept);
            await SentinelAsync(clients, clients[3]);
            Assert.False(clients[3].Received(others), "Others reached the caller");
            Assert.False(clients[4].Received(allExcept) || clients[5].Received(allExcept), "AllExcept reached an excluded connection");
        }
        finally
        {
            await ChatClient.DisposeAllAsync(clients);
        }
    }

    [Fact]
    public async Task Group_MessageReachesExactlyTheMembersAcrossWorkers()
    {
        var clients = await ConnectSpreadAsync(20);
        try
        {
            var group = Unique("group");
            var members = clients.Where((_, i) => i % 3 == 0).ToList();
            Assert.Contains(members, m => m.Worker.Pid != members[0].Worker.Pid);
            foreach (var member in members.Take(members.Count - 1))
            {
                await member.InvokeAsync("Join", group);
            }

            // The last member is added by a client on another worker: group membership crosses workers too.
            var last = members[^1];
            var adder = clients.First(c => !members.Contains(c) && c.Worker.Pid != last.Worker.Pid);
            await adder.InvokeAsync("AddToGroup", last.Worker.ConnectionId, group);

            var sender = clients.First(c => !members.Contains(c));
            var text = Unique("to-group");
            await sender.InvokeAsync("SendGroup", group, text);
            await WaitAllReceivedAsync(members, text);
            await SentinelAsync(clients, sender);
            Assert.All(clients.Except(members), c => Assert.False(c.Received(text), $"{c.User} on worker {c.Worker.Pid} is not in the group but got its message"));

            // Removed from another worker: no longer a member.
            var remover = clients.First(c => c.Worker.Pid != members[0].Worker.Pid);
            await remover.InvokeAsync("RemoveFromGroup", members[0].Worker.ConnectionId, group);
            var second = Unique("to-group-after-remove");
            await sender.InvokeAsync("SendGroup", group, second);
            await WaitAllReceivedAsync(members.Skip(1), second);
            await SentinelAsync(clients, sender);
            Assert.False(members[0].Received(second), "a connection removed from the group by another worker still got its message");

            // GroupExcept, OthersInGroup and Groups.
            var except = Unique("group-except");
            await sender.InvokeAsync("SendGroupExcept", group, new[] { members[1].Worker.ConnectionId }, except);
            var othersInGroup = Unique("others-in-group");
            await members[2].InvokeAsync("SendOthersInGroup", group, othersInGroup);
            var secondGroup = Unique("group2");
            await clients[1].InvokeAsync("Join", secondGroup);
            var groups = Unique("groups");
            await sender.InvokeAsync("SendGroups", new[] { group, secondGroup }, groups);
            await WaitAllReceivedAsync(members.Skip(2), except);
            await WaitAllReceivedAsync(members.Skip(1).Where(m => m != members[2]), othersInGroup);
            await WaitAllReceivedAsync([.. members.Skip(1), clients[1]], groups);
            await SentinelAsync(clients, sender);
            await SentinelAsync(clients, members[2]);
            Assert.False(members[1].Received(except), "GroupExcept reached the excluded member");
            Assert.False(members[2].Received(othersInGroup), "OthersInGroup reached the caller");
            Assert.Equal(1, clients[1].Inbox.Count(m => m.Text == groups));
        }
        finally
        {
            await ChatClient.DisposeAllAsync(clients);
        }
    }

    [Fact]
    public async Task UserAndClient_TargetConnectionsOnAnotherWorker()
    {
        var clients = await ConnectSpreadAsync(8);
        // alice has two connections, one on each worker.
        var alice = new List<ChatClient>();
        try
        {
            alice.Add(await ChatClient.ConnectAsync(cluster.Run.Port, "alice"));
            for (var i = 0; i < 4 && alice.Select(a => a.Worker.Pid).Distinct().Count() < 2; i++)
            {
                alice.Add(await ChatClient.ConnectAsync(cluster.Run.Port, "alice", messagePack: true));
            }

            Assert.Equal(2, alice.Select(a => a.Worker.Pid).Distinct().Count());

            var everyone = clients.Concat(alice).ToList();
            var sender = clients[0];
            var toAlice = Unique("to-alice");
            await sender.InvokeAsync("SendUser", "alice", toAlice);
            await WaitAllReceivedAsync(alice, toAlice);

            var target = clients.First(c => c.Worker.Pid != sender.Worker.Pid);
            var toOne = Unique("to-one");
            await sender.InvokeAsync("SendClient", target.Worker.ConnectionId, toOne);
            await WaitAllReceivedAsync([target], toOne);

            var pair = clients.Where(c => c != target && c != sender).Take(2).ToList();
            var toPair = Unique("to-pair");
            await sender.InvokeAsync("SendClients", pair.Select(c => c.Worker.ConnectionId).ToArray(), toPair);
            var toUsers = Unique("to-users");
            await sender.InvokeAsync("SendUsers", new[] { "alice", target.User }, toUsers);
            await WaitAllReceivedAsync(pair, toPair);
            await WaitAllReceivedAsync([.. alice, target], toUsers);

            await SentinelAsync(everyone, sender);
            Assert.All(everyone.Except(alice), c => Assert.False(c.Received(toAlice), $"{c.User} got alice's message"));
            Assert.All(everyone.Where(c => c != target), c => Assert.False(c.Received(toOne), $"{c.User} got {target.User}'s message"));
            Assert.All(everyone.Except(pair), c => Assert.False(c.Received(toPair), $"{c.User} got a message for two others"));
            Assert.All(everyone.Except(alice).Where(c => c != target), c => Assert.False(c.Received(toUsers), $"{c.User} got a message for two other users"));
        }
        finally
        {
            await ChatClient.DisposeAllAsync(clients.Concat(alice));
        }
    }

    [Fact]
    public async Task ClientResult_FromAConnectionOnAnotherWorker_ReturnsItsAnswer()
    {
        var clients = await ConnectSpreadAsync(4);
        try
        {
            var asker = clients[0];
            var other = clients.First(c => c.Worker.Pid != asker.Worker.Pid);
            var same = clients.Skip(1).First(c => c.Worker.Pid == asker.Worker.Pid);

            Assert.Equal($"{other.User} answers what", await asker.InvokeAsync<string>("Ask", other.Worker.ConnectionId, "what"));
            Assert.Equal($"{same.User} answers why", await asker.InvokeAsync<string>("Ask", same.Worker.ConnectionId, "why"));
        }
        finally
        {
            await ChatClient.DisposeAllAsync(clients);
        }
    }

    // Connects count clients (round-robin puts consecutive connections on alternate workers) and checks both workers have some.
    private async Task<List<ChatClient>> ConnectSpreadAsync(int count)
    {
        var clients = await ChatClient.ConnectManyAsync(cluster.Run.Port, count);
        var spread = clients.GroupBy(c => c.Worker.Pid).ToDictionary(g => g.Key, g => g.Count());
        output.WriteLine($"clients per worker pid: {string.Join(", ", spread.Select(p => $"{p.Key}: {p.Value}"))}");
        if (spread.Count < 2)
        {
            await ChatClient.DisposeAllAsync(clients);
            Assert.Fail($"all {count} clients landed on one worker");
        }

        return clients;
    }

    private static async Task WaitAllReceivedAsync(IEnumerable<ChatClient> clients, string text)
    {
        var expected = clients.ToList();
        try
        {
            await Wait.UntilAsync(() => expected.All(c => c.Received(text)), DeliveryTimeout);
        }
        catch (TimeoutException)
        {
            var missing = expected.Where(c => !c.Received(text)).Select(c => $"{c.User} (worker pid {c.Worker.Pid})");
            Assert.Fail($"'{text}' did not reach {string.Join(", ", missing)} within {DeliveryTimeout.TotalSeconds} s");
        }
    }

    // A message to everyone from the same sender, after the ones under test: once it has arrived everywhere, so has
    // everything that sender's worker relayed before it (one ordered stream per worker), and what is absent stays absent.
    private static async Task SentinelAsync(IReadOnlyList<ChatClient> clients, ChatClient sender)
    {
        var sentinel = Unique("sentinel");
        await sender.InvokeAsync("Send", sentinel);
        await WaitAllReceivedAsync(clients, sentinel);
    }

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}";

    public sealed class ChatCluster : IAsyncLifetime
    {
        public ClusterRun Run { get; private set; } = null!;

        public async Task InitializeAsync() => Run = await ClusterRun.StartAppReadyAsync(null, TestPaths.ChatAppDll);

        public async Task DisposeAsync() => await Run.DisposeAsync();
    }

}
