using System.Collections.Concurrent;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;

namespace KestrelCluster.Tests.Infrastructure;

/// <summary>
/// A .NET SignalR client of test/TestApps/ChatApp's hub, WebSockets only with no negotiate request, so each
/// connection lives on whichever worker accepted its one TCP connection. Keeps every "message" it receives.
/// </summary>
internal sealed class ChatClient : IAsyncDisposable
{
    public static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(30);

    private readonly ConcurrentQueue<(string From, string Text)> _inbox = new();
    private int _reconnects;

    private ChatClient(HubConnection connection, string user)
    {
        Connection = connection;
        User = user;
        connection.On<string, string>("message", (from, text) => _inbox.Enqueue((from, text)));
        connection.On<string, string>("answer", question => $"{user} answers {question}");
        connection.Reconnected += _ =>
        {
            Interlocked.Increment(ref _reconnects);
            return Task.CompletedTask;
        };
    }

    public HubConnection Connection { get; }

    public string User { get; }

    /// <summary>The hub's answer to WhoAmI at the last <see cref="RefreshAsync"/>.</summary>
    public WorkerInfo Worker { get; private set; } = null!;

    public int Reconnects => Volatile.Read(ref _reconnects);

    public IReadOnlyList<(string From, string Text)> Inbox => [.. _inbox];

    public bool Received(string text) => _inbox.Any(m => m.Text == text);

    public static async Task<ChatClient> ConnectAsync(int port, string user, bool messagePack = false, bool reconnect = false)
    {
        var builder = new HubConnectionBuilder().WithUrl($"http://127.0.0.1:{port}/chat?user={user}", options =>
        {
            options.SkipNegotiation = true;
            options.Transports = HttpTransportType.WebSockets;
        });
        if (messagePack)
        {
            builder.AddMessagePackProtocol();
        }

        if (reconnect)
        {
            // Retries at once, then every half second: bounded by the test's own waits.
            builder.WithAutomaticReconnect(new EveryHalfSecond());
        }

        var client = new ChatClient(builder.Build(), user);
        try
        {
            using var timeout = new CancellationTokenSource(CallTimeout);
            await client.Connection.StartAsync(timeout.Token);
            await client.RefreshAsync();
            return client;
        }
        catch
        {
            await client.DisposeAsync();
            throw;
        }
    }

    public static async Task<List<ChatClient>> ConnectManyAsync(int port, int count, bool reconnect = false)
    {
        var clients = new List<ChatClient>();
        try
        {
            for (var i = 0; i < count; i++)
            {
                clients.Add(await ConnectAsync(port, $"user{i}", messagePack: i % 2 == 1, reconnect: reconnect));
            }

            return clients;
        }
        catch
        {
            await DisposeAllAsync(clients);
            throw;
        }
    }

    public async Task RefreshAsync() => Worker = await InvokeAsync<WorkerInfo>("WhoAmI");

    public async Task InvokeAsync(string method, params object?[] args)
    {
        using var timeout = new CancellationTokenSource(CallTimeout);
        await Connection.InvokeCoreAsync(method, args, timeout.Token);
    }

    public async Task<T> InvokeAsync<T>(string method, params object?[] args)
    {
        using var timeout = new CancellationTokenSource(CallTimeout);
        return await Connection.InvokeCoreAsync<T>(method, args, timeout.Token);
    }

    public static async Task DisposeAllAsync(IEnumerable<ChatClient> clients)
    {
        foreach (var client in clients)
        {
            await client.DisposeAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await Connection.StopAsync(timeout.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or InvalidOperationException)
        {
            // The test has its answer already; the process is killed by pid on dispose anyway.
        }

        await Connection.DisposeAsync();
    }

    private sealed class EveryHalfSecond : IRetryPolicy
    {
        public TimeSpan? NextRetryDelay(RetryContext retryContext)
            => retryContext.ElapsedTime < TimeSpan.FromMinutes(2) ? TimeSpan.FromMilliseconds(retryContext.PreviousRetryCount == 0 ? 0 : 500) : null;
    }
}

public sealed record WorkerInfo(int Pid, int WorkerId, int Generation, string ConnectionId);
