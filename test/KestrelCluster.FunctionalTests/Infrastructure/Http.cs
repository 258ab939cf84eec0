using System.Net;

namespace KestrelCluster.Tests.Infrastructure;

internal static class Http
{
    public static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(30);

    /// <summary>A client whose every request opens a new connection (Connection: close).</summary>
    public static HttpClient NewConnectionClient(string baseAddress)
    {
        var client = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.Zero }) { BaseAddress = new Uri(baseAddress), Timeout = RequestTimeout };
        client.DefaultRequestHeaders.ConnectionClose = true;
        return client;
    }

    /// <summary>A client that keeps exactly one connection alive.</summary>
    public static HttpClient KeepAliveClient(string baseAddress)
        => new(new SocketsHttpHandler { MaxConnectionsPerServer = 1 }) { BaseAddress = new Uri(baseAddress), Timeout = RequestTimeout };

    /// <summary>GET / answers "Hello from {pid}"; returns that pid.</summary>
    public static async Task<int> GetPidAsync(HttpClient client, CancellationToken cancellationToken = default)
    {
        using var response = await client.GetAsync("/", cancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        Assert.StartsWith("Hello from ", body);
        return int.Parse(body["Hello from ".Length..]);
    }
}
