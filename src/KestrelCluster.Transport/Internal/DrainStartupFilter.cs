using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;

namespace KestrelCluster.Transport;

// Registered only in a worker. Outside a drain it costs one volatile read per request. HTTP/2 and HTTP/3
// are left to Kestrel's graceful shutdown (GOAWAY).
internal sealed class DrainStartupFilter(ConnectionDrain drain) : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use(next => context =>
        {
            if (drain.IsDraining && (HttpProtocol.IsHttp11(context.Request.Protocol) || HttpProtocol.IsHttp10(context.Request.Protocol)))
            {
                // Kestrel closes the connection after a response that carries it.
                context.Response.Headers.Connection = "close";
            }

            return next(context);
        });
        next(app);
    };
}
