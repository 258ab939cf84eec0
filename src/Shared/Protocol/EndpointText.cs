using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.Sockets;

namespace KestrelCluster.Protocol;

// How an endpoint travels in Bind/BindResult frames: "127.0.0.1:5000", "[::1]:0", "unix:/run/app.sock".
internal static class EndpointText
{
    private const string UnixPrefix = "unix:";

    public static string Format(EndPoint endPoint) => endPoint switch
    {
        IPEndPoint ip => ip.ToString(),
        UnixDomainSocketEndPoint unix => UnixPrefix + unix,
        _ => throw new NotSupportedException($"Endpoint type {endPoint.GetType().Name} is not supported by the cluster transport."),
    };

    public static bool TryParse(string text, [NotNullWhen(true)] out EndPoint? endPoint)
    {
        if (text.StartsWith(UnixPrefix, StringComparison.Ordinal))
        {
            var path = text[UnixPrefix.Length..];
            endPoint = path.Length is > 0 and < 108 ? new UnixDomainSocketEndPoint(path) : null;
            return endPoint is not null;
        }

        endPoint = IPEndPoint.TryParse(text, out var ip) && text.Contains(':') ? ip : null;
        return endPoint is not null;
    }
}
