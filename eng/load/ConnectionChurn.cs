using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace KestrelCluster.Load;

public sealed record ChurnResult(long Answered, long Failed, TimeSpan Elapsed)
{
    public override string ToString() => $"{Answered + Failed} connections, {Answered} answered, {Failed} failed in {Elapsed.TotalSeconds:0.0} s ({Answered / Math.Max(Elapsed.TotalSeconds, 0.001):0}/s)";
}

/// <summary>
/// Many short connections, as cheaply as a client can make them: connect, one HTTP/1.1 request with
/// Connection: close, read to the end, close. For leak checks, where the count matters more than realism.
/// </summary>
public static class ConnectionChurn
{
    private static readonly byte[] Request = Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");

    public static async Task<ChurnResult> RunAsync(IPEndPoint target, long connections, int concurrency, CancellationToken cancellationToken = default)
    {
        if (!IPAddress.IsLoopback(target.Address))
        {
            throw new ArgumentException("connections are only ever made to a loopback address", nameof(target));
        }

        long next = 0, answered = 0, failed = 0;
        var stopwatch = Stopwatch.StartNew();

        async Task ClientAsync()
        {
            var buffer = new byte[4096];
            while (Interlocked.Increment(ref next) <= connections && !cancellationToken.IsCancellationRequested)
            {
                try
                {
                    using var socket = new Socket(target.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                    timeout.CancelAfter(TimeSpan.FromSeconds(30));
                    await socket.ConnectAsync(target, timeout.Token).ConfigureAwait(false);
                    await socket.SendAsync(Request, SocketFlags.None, timeout.Token).ConfigureAwait(false);
                    var length = 0;
                    int read;
                    while ((read = await socket.ReceiveAsync(buffer.AsMemory(length == buffer.Length ? 0 : length), SocketFlags.None, timeout.Token).ConfigureAwait(false)) > 0)
                    {
                        length = Math.Min(length + read, buffer.Length);
                    }

                    if (length > 12 && Encoding.ASCII.GetString(buffer, 0, 12) == "HTTP/1.1 200")
                    {
                        Interlocked.Increment(ref answered);
                        continue;
                    }
                }
                catch (Exception ex) when (ex is SocketException or OperationCanceledException)
                {
                }

                Interlocked.Increment(ref failed);
            }
        }

        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(ClientAsync, CancellationToken.None))).ConfigureAwait(false);
        return new ChurnResult(answered, failed, stopwatch.Elapsed);
    }
}
