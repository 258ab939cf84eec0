using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace KestrelCluster.Transport;

// A worker asked to stop first lets its keep-alive connections end cleanly: while draining, every HTTP/1.x
// response says Connection: close (DrainStartupFilter), so each client reconnects through the supervisor to
// another worker after its current request. Stopping at once would make Kestrel close idle keep-alive
// connections, and a client that does not retry (wrk, load balancers) fails the request it sends meanwhile.
// The window ends when no connection is left or after ClusterTransportOptions.DrainTimeout; then the app stops.
internal sealed class ConnectionDrain(IOptions<ClusterTransportOptions> options, IHostApplicationLifetime lifetime, ILogger<ConnectionDrain> logger)
{
    private readonly TaskCompletionSource _idle = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _started = new();
    private volatile bool _draining;
    private int _begun;
    private int _open;

    public bool IsDraining => _draining;

    public int OpenConnections => Volatile.Read(ref _open);

    /// <summary>Cancelled when the drain window opens: long-lived connections (SignalR) close then, not at its end.</summary>
    public CancellationToken Started => _started.Token;

    public void Track(ConnectionContext connection)
    {
        Interlocked.Increment(ref _open);
        connection.ConnectionClosed.Register(static state => ((ConnectionDrain)state!).OnClosed(), this);
    }

    /// <summary>Starts the drain window once; the app stops when it ends.</summary>
    public void Begin()
    {
        if (Interlocked.Exchange(ref _begun, 1) != 0)
        {
            return;
        }

        _draining = true;
        var timeout = options.Value.DrainTimeout;
        ClusterTransportLog.Draining(logger, OpenConnections, timeout.TotalSeconds);
        if (OpenConnections == 0)
        {
            _idle.TrySetResult();
        }

        _ = StopWhenDrainedAsync(timeout);
        _started.Cancel();
    }

    private void OnClosed()
    {
        if (Interlocked.Decrement(ref _open) == 0 && _draining)
        {
            _idle.TrySetResult();
        }
    }

    private async Task StopWhenDrainedAsync(TimeSpan timeout)
    {
        try
        {
            await _idle.Task.WaitAsync(timeout, lifetime.ApplicationStopping).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            ClusterTransportLog.DrainTimedOut(logger, OpenConnections, timeout.TotalSeconds);
        }
        catch (OperationCanceledException)
        {
            // Stopping already, for another reason.
        }

        lifetime.StopApplication();
    }
}
