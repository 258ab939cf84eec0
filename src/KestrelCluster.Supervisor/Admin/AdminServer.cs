using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Supervisor.Admin;

// --admin-urls: what orchestrators probe. /healthz: the supervisor is alive. /readyz: at least one worker
// is ready and the cluster is not stopping (the body names failing workers, if any: the cluster still
// serves). /metrics: Prometheus text. Kept off the workers' ports.
internal sealed class AdminServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private AdminServer(WebApplication app)
    {
        _app = app;
    }

    public IReadOnlyList<string> Addresses => _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.ToArray() ?? [];

    public static async Task<AdminServer> StartAsync(string urls, Func<bool> isReady, Func<string?> failing, Func<string> metrics, CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(urls.Split(';'));
        // The supervisor logs what matters about this host (its address, a failure to bind); per-request logs would drown the workers' output.
        builder.Logging.ClearProviders();
        // The supervisor handles signals itself; the admin host must not stop on Ctrl+C on its own.
        builder.Services.AddSingleton<Microsoft.Extensions.Hosting.IHostLifetime, NoSignalsLifetime>();
        var app = builder.Build();
        app.MapGet("/healthz", () => Results.Text("ok"));
        app.MapGet("/readyz", () =>
        {
            var detail = failing() is { } names ? $"; failing: {names}" : "";
            return isReady() ? Results.Text("ready" + detail) : Results.Text("not ready" + detail, statusCode: StatusCodes.Status503ServiceUnavailable);
        });
        app.MapGet("/metrics", () => Results.Text(metrics(), "text/plain; version=0.0.4; charset=utf-8"));
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        return new AdminServer(app);
    }

    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _app.StopAsync(timeout.Token).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}

internal sealed class NoSignalsLifetime : Microsoft.Extensions.Hosting.IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
