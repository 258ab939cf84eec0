using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.Sockets;

namespace KestrelCluster.Protocol;

// How an endpoint travels in Bind/BindResult frames: "127.0.0.1:5000", "[::1]:0", "unix:/run/app.sock",
// "unix:@name" (an abstract socket, shown the way ss and UnixDomainSocketEndPoint.ToString show it).
internal static class EndpointText
{
    private const string UnixPrefix = "unix:";

    public static string Format(EndPoint endPoint) => endPoint switch
    {
        IPEndPoint ip => ip.ToString(),
        UnixDomainSocketEndPoint unix => UnixPrefix + UnixPath(unix),
        _ => throw new NotSupportedException($"Endpoint type {endPoint.GetType().Name} is not supported by the cluster transport."),
    };

    public static bool TryParse(string text, [NotNullWhen(true)] out EndPoint? endPoint)
    {
        if (text.StartsWith(UnixPrefix, StringComparison.Ordinal))
        {
            var path = text[UnixPrefix.Length..];
            if (path.StartsWith('@'))
            {
                // An abstract name starts with NUL in sun_path; "@" alone (autobind) is no endpoint.
                path = path.Length > 1 ? "\0" + path[1..] : "";
            }

            endPoint = null;
            try
            {
                // sun_path holds 108 bytes: a path of fewer characters can still be too long in UTF-8 (found by fuzzing).
                endPoint = path.Length is > 0 and < 108 ? new UnixDomainSocketEndPoint(path) : null;
            }
            catch (ArgumentException)
            {
            }

            return endPoint is not null;
        }

        endPoint = IPEndPoint.TryParse(text, out var ip) && text.Contains(':') ? ip : null;
        return endPoint is not null;
    }

    // An abstract socket lives in no folder: nothing to resolve, and no file to delete.
    public static bool IsAbstract(UnixDomainSocketEndPoint endPoint)
    {
        var address = endPoint.Serialize();
        return address.Size > 2 && address[2] == 0;
    }

    // A relative path is made absolute by the process that formats it: the worker's working folder (the
    // app's) is not the supervisor's, and the supervisor must bind the file the app meant.
    private static string UnixPath(UnixDomainSocketEndPoint endPoint)
    {
        var path = endPoint.ToString();
        return IsAbstract(endPoint) ? path : Path.GetFullPath(path);
    }
}
