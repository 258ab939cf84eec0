using KestrelCluster.Protocol;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.Net.Http.Headers;

namespace KestrelCluster.Transport;

// Request-aware affinity: a SignalR negotiate answered here sets a cookie naming this worker's slot, which the
// client sends on the transport request that follows (and on a Blazor reconnect's negotiate); the supervisor reads
// it and passes that connection here, where the connection token or circuit lives. Browsers and the .NET client
// (HttpConnectionOptions.Cookies, shared by its HttpClient and its WebSocket) keep it between the two requests.
// Other requests pay one string comparison.
internal sealed class AffinityCookieStartupFilter(SupervisorChannel channel) : IStartupFilter
{
    private string? _cookie;

    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use(next => context =>
        {
            if (context.Request.Path.Value is { } path && path.EndsWith("/negotiate", StringComparison.OrdinalIgnoreCase))
            {
                context.Response.OnStarting(SetCookie, context);
            }

            return next(context);
        });
        next(app);
    };

    private Task SetCookie(object state)
    {
        var context = (HttpContext)state;
        if (channel.WorkerId >= 0 && context.GetEndpoint()?.Metadata.GetMetadata<NegotiateMetadata>() is not null)
        {
            // A session cookie for the whole site: the hub's path and Blazor's _blazor alike.
            _cookie ??= $"{AffinityCookie.Name}={channel.WorkerId}; Path=/; HttpOnly";
            context.Response.Headers.Append(HeaderNames.SetCookie, _cookie);
        }

        return Task.CompletedTask;
    }
}
