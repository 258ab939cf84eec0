using KestrelCluster.Protocol;

namespace KestrelCluster.Supervisor.Distribution;

internal enum FirstRequestKind : byte
{
    // Not enough bytes yet to tell.
    Incomplete,

    // An HTTP/1.x request: Worker is the slot its affinity cookie names, or -1.
    Http,

    // TLS (Kestrel terminates it in the worker) or HTTP/2 with prior knowledge (HPACK is not worth decoding
    // here): unreadable, so the client's address decides.
    Opaque,
}

internal readonly record struct FirstRequestHint(FirstRequestKind Kind, int Worker = -1);

// Reads the first bytes of a new connection (peeked, not consumed: the worker reads them again) for request-aware
// affinity: only the request line and headers of HTTP/1.x, only the affinity cookie.
internal static class FirstRequest
{
    // Request line and headers past this are not waited for: what has come is read as it is.
    public const int PeekSize = 8192;

    private static ReadOnlySpan<byte> Http2Preface => "PRI * HTTP/2.0\r\n"u8;

    private static ReadOnlySpan<byte> CookieHeader => "cookie:"u8;

    /// <param name="final">No more bytes are to be waited for (time is up, the peer closed, or the buffer is full).</param>
    public static FirstRequestHint Read(ReadOnlySpan<byte> data, bool final)
    {
        if (data.IsEmpty)
        {
            return new(final ? FirstRequestKind.Http : FirstRequestKind.Incomplete);
        }

        // A TLS handshake record.
        if (data[0] == 0x16)
        {
            return new(FirstRequestKind.Opaque);
        }

        var preface = Math.Min(data.Length, Http2Preface.Length);
        if (data[..preface].SequenceEqual(Http2Preface[..preface]))
        {
            return new(preface == Http2Preface.Length || final ? FirstRequestKind.Opaque : FirstRequestKind.Incomplete);
        }

        var end = data.IndexOf("\r\n\r\n"u8);
        if (end < 0 && !final && data.Length < PeekSize)
        {
            return new(FirstRequestKind.Incomplete);
        }

        return new(FirstRequestKind.Http, WorkerFromCookies(end < 0 ? data : data[..(end + 2)]));
    }

    // The slot named by the first affinity cookie of any Cookie header line, or -1.
    internal static int WorkerFromCookies(ReadOnlySpan<byte> headers)
    {
        var lineEnd = headers.IndexOf("\r\n"u8);
        while (lineEnd >= 0)
        {
            headers = headers[(lineEnd + 2)..];
            lineEnd = headers.IndexOf("\r\n"u8);
            var line = lineEnd < 0 ? headers : headers[..lineEnd];
            if (line.Length > CookieHeader.Length && System.Text.Ascii.EqualsIgnoreCase(line[..CookieHeader.Length], CookieHeader))
            {
                var worker = WorkerFromCookieValue(line[CookieHeader.Length..]);
                if (worker >= 0)
                {
                    return worker;
                }
            }
        }

        return -1;
    }

    private static int WorkerFromCookieValue(ReadOnlySpan<byte> value)
    {
        while (!value.IsEmpty)
        {
            var separator = value.IndexOf((byte)';');
            var pair = (separator < 0 ? value : value[..separator]).TrimStart((byte)' ');
            value = separator < 0 ? default : value[(separator + 1)..];
            if (!pair.StartsWith(AffinityCookie.NameEquals))
            {
                continue;
            }

            var digits = pair[AffinityCookie.NameEquals.Length..].TrimEnd((byte)' ');
            var worker = 0;
            if (digits.IsEmpty || digits.Length > 4)
            {
                return -1;
            }

            foreach (var digit in digits)
            {
                if (digit is < (byte)'0' or > (byte)'9')
                {
                    return -1;
                }

                worker = (worker * 10) + (digit - '0');
            }

            return worker;
        }

        return -1;
    }
}
