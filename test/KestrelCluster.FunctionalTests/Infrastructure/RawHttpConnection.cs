using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace KestrelCluster.Tests.Infrastructure;

/// <summary>One response read off a raw connection: status, body, and whether the server closes the connection after it.</summary>
internal sealed record RawResponse(int Status, string Body, bool ConnectionClose);

/// <summary>
/// One HTTP/1.1 keep-alive connection on a plain socket: a client that never retries (like wrk or a load
/// balancer), so a connection the server closes under a request shows up as an IOException, not a quiet retry.
/// </summary>
internal sealed class RawHttpConnection : IDisposable
{
    private readonly Socket _socket;
    private readonly byte[] _buffer = new byte[16 * 1024];
    private int _start;
    private int _end;

    private RawHttpConnection(Socket socket) => _socket = socket;

    public static async Task<RawHttpConnection> OpenAsync(int port, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancellationToken);
            return new RawHttpConnection(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Sends GET and reads its whole response; IOException when the server closes or resets the connection first.</summary>
    public async Task<RawResponse> GetAsync(string path, CancellationToken cancellationToken)
    {
        try
        {
            await _socket.SendAsync(Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"), SocketFlags.None, cancellationToken);
            var statusLine = await ReadLineAsync(cancellationToken);
            var status = int.Parse(statusLine.Split(' ')[1], CultureInfo.InvariantCulture);
            var close = false;
            var chunked = false;
            var contentLength = 0;
            while (await ReadLineAsync(cancellationToken) is { Length: > 0 } header)
            {
                var colon = header.IndexOf(':');
                var name = header[..colon].Trim();
                var value = header[(colon + 1)..].Trim();
                if (name.Equals("Connection", StringComparison.OrdinalIgnoreCase))
                {
                    close = value.Contains("close", StringComparison.OrdinalIgnoreCase);
                }
                else if (name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase))
                {
                    chunked = value.Contains("chunked", StringComparison.OrdinalIgnoreCase);
                }
                else if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                {
                    contentLength = int.Parse(value, CultureInfo.InvariantCulture);
                }
            }

            var body = new StringBuilder();
            if (chunked)
            {
                while (int.Parse(await ReadLineAsync(cancellationToken), NumberStyles.HexNumber, CultureInfo.InvariantCulture) is var size and > 0)
                {
                    body.Append(await ReadBytesAsync(size, cancellationToken));
                    await ReadLineAsync(cancellationToken);
                }

                await ReadLineAsync(cancellationToken);
            }
            else
            {
                body.Append(await ReadBytesAsync(contentLength, cancellationToken));
            }

            return new RawResponse(status, body.ToString(), close);
        }
        catch (SocketException ex)
        {
            throw new IOException(ex.Message, ex);
        }
    }

    private async Task<string> ReadLineAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var newline = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
            if (newline >= 0)
            {
                var line = Encoding.ASCII.GetString(_buffer, _start, newline - _start).TrimEnd('\r');
                _start = newline + 1;
                return line;
            }

            await FillAsync(cancellationToken);
        }
    }

    private async Task<string> ReadBytesAsync(int count, CancellationToken cancellationToken)
    {
        while (_end - _start < count)
        {
            await FillAsync(cancellationToken);
        }

        var text = Encoding.UTF8.GetString(_buffer, _start, count);
        _start += count;
        return text;
    }

    private async Task FillAsync(CancellationToken cancellationToken)
    {
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }

        if (_end == _buffer.Length)
        {
            throw new IOException("response line too long");
        }

        var read = await _socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, cancellationToken);
        if (read == 0)
        {
            throw new IOException("the server closed the connection before the response was complete");
        }

        _end += read;
    }

    public void Dispose() => _socket.Dispose();
}
