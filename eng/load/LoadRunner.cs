using System.Diagnostics;
using System.Globalization;
using System.Net;

namespace KestrelCluster.Load;

/// <summary>
/// One request that failed. Timestamps are <see cref="Stopwatch.GetTimestamp"/> values, comparable with
/// anything else the same process records (e.g. when a worker was killed). LastPid: for a keep-alive client,
/// the worker pid that answered last on the connection this request used (null on a fresh connection).
/// </summary>
public sealed record LoadFailure(long StartedAt, long EndedAt, string Kind, bool KeepAlive, int? LastPid, string Detail = "");

/// <summary>Totals of one bounded load run.</summary>
public sealed record LoadResult(long Sent, long Answered, long Failed, TimeSpan Elapsed, IReadOnlyDictionary<string, long> FailureKinds)
{
    public IReadOnlyList<LoadFailure> Failures { get; init; } = [];

    public override string ToString()
        => $"sent {Sent}, answered {Answered}, failed {Failed} in {Elapsed.TotalSeconds:0.0} s ({Answered / Math.Max(Elapsed.TotalSeconds, 0.001):0} req/s)"
           + (FailureKinds.Count > 0 ? " — " + string.Join(", ", FailureKinds.Select(k => $"{k.Key}: {k.Value}")) : "");
}

/// <summary>
/// Bounded HTTP load on loopback: keep-alive clients (one connection each, reused) and new-connection
/// clients (Connection: close, a new TCP connection per request), until the duration or the token ends.
/// A request counts as answered only with a 200 and the expected body prefix.
/// </summary>
public static class LoadRunner
{
    public static async Task<LoadResult> RunAsync(Uri target, int keepAliveClients, int newConnectionClients, TimeSpan duration, CancellationToken cancellationToken = default, string path = "/", string expectedPrefix = "Hello from ")
    {
        if (!IPAddress.TryParse(target.Host.Trim('[', ']'), out var address) || !IPAddress.IsLoopback(address))
        {
            throw new ArgumentException("load is only ever sent to a loopback address", nameof(target));
        }

        long sent = 0, answered = 0, failed = 0;
        var failureKinds = new System.Collections.Concurrent.ConcurrentDictionary<string, long>();
        var failures = new System.Collections.Concurrent.ConcurrentQueue<LoadFailure>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        stop.CancelAfter(duration);
        var stopwatch = Stopwatch.StartNew();

        async Task ClientAsync(bool newConnectionPerRequest)
        {
            using var handler = new SocketsHttpHandler
            {
                MaxConnectionsPerServer = 1,
                PooledConnectionLifetime = newConnectionPerRequest ? TimeSpan.Zero : Timeout.InfiniteTimeSpan,
            };
            using var client = new HttpClient(handler) { BaseAddress = target, Timeout = TimeSpan.FromSeconds(30) };
            client.DefaultRequestHeaders.ConnectionClose = newConnectionPerRequest;
            int? lastPid = null;
            while (!stop.IsCancellationRequested)
            {
                Interlocked.Increment(ref sent);
                var startedAt = Stopwatch.GetTimestamp();
                string kind;
                var detail = "";
                try
                {
                    // Not cancelled by the stop token: a request once sent must be answered.
                    using var response = await client.GetAsync(path, CancellationToken.None).ConfigureAwait(false);
                    var body = await response.Content.ReadAsStringAsync(CancellationToken.None).ConfigureAwait(false);
                    if (response.StatusCode == HttpStatusCode.OK && body.StartsWith(expectedPrefix, StringComparison.Ordinal))
                    {
                        Interlocked.Increment(ref answered);
                        lastPid = newConnectionPerRequest ? null
                            : int.TryParse(body.AsSpan(expectedPrefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : null;
                        continue;
                    }

                    kind = $"HTTP {(int)response.StatusCode}";
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
                {
                    kind = ex.InnerException?.GetType().Name ?? ex.GetType().Name;
                    detail = ex.InnerException?.Message ?? ex.Message;
                }

                failureKinds.AddOrUpdate(kind, 1, (_, n) => n + 1);
                failures.Enqueue(new LoadFailure(startedAt, Stopwatch.GetTimestamp(), kind, !newConnectionPerRequest, lastPid, detail));
                // The handler opens a new connection after a failure.
                lastPid = null;
                Interlocked.Increment(ref failed);
            }
        }

        var clients = Enumerable.Range(0, keepAliveClients).Select(_ => Task.Run(() => ClientAsync(false)))
            .Concat(Enumerable.Range(0, newConnectionClients).Select(_ => Task.Run(() => ClientAsync(true))));
        await Task.WhenAll(clients).ConfigureAwait(false);
        return new LoadResult(sent, answered, failed, stopwatch.Elapsed, new Dictionary<string, long>(failureKinds)) { Failures = [.. failures] };
    }
}
