using System.Runtime.InteropServices;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Transport;

// A worker's lifetime belongs to its supervisor. Ctrl+C and a terminal hangup signal the whole foreground
// process group, workers included: a worker that stopped (SIGINT) or died (SIGHUP's default action) on its own
// would race the supervisor's orderly drain or reload, so both are left to the supervisor. SIGTERM and SIGQUIT
// (sent to this one process) still stop it gracefully, through the same drain window as the supervisor's Stop.
// It also writes the start-up lines ConsoleLifetime writes for an app alone (environment, content root), which
// an operator reads to see what a worker runs.
internal sealed class ClusterWorkerLifetime(ConnectionDrain drain, IHostEnvironment environment, IHostApplicationLifetime applicationLifetime, ILoggerFactory loggerFactory) : IHostLifetime, IDisposable
{
    private readonly List<PosixSignalRegistration> _registrations = [];
    private readonly List<CancellationTokenRegistration> _lifetimeEvents = [];
    // ConsoleLifetime's category, so log filters written for an app alone apply to these lines too.
    private readonly ILogger _logger = loggerFactory.CreateLogger("Microsoft.Hosting.Lifetime");

    public Task WaitForStartAsync(CancellationToken cancellationToken)
    {
        _lifetimeEvents.Add(applicationLifetime.ApplicationStarted.Register(() => ClusterTransportLog.ApplicationStarted(_logger, environment.EnvironmentName, environment.ContentRootPath)));
        _lifetimeEvents.Add(applicationLifetime.ApplicationStopping.Register(() => ClusterTransportLog.ApplicationStopping(_logger)));
        _registrations.Add(PosixSignalRegistration.Create(PosixSignal.SIGINT, context => context.Cancel = true));
        _registrations.Add(PosixSignalRegistration.Create(PosixSignal.SIGHUP, context => context.Cancel = true));
        _registrations.Add(PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop));
        _registrations.Add(PosixSignalRegistration.Create(PosixSignal.SIGQUIT, Stop));
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private void Stop(PosixSignalContext context)
    {
        // Keep the process alive until the host has stopped; Main returns then.
        context.Cancel = true;
        drain.Begin();
    }

    public void Dispose()
    {
        _registrations.ForEach(r => r.Dispose());
        _lifetimeEvents.ForEach(r => r.Dispose());
    }
}
