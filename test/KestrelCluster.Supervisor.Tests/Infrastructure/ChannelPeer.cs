using System.Diagnostics;
using System.Net.Sockets;
using KestrelCluster.Protocol;

namespace KestrelCluster.Tests.Infrastructure;

/// <summary>A process other than a worker talking to a cluster's sockets: connects, sends frames, sees whether it was dropped.</summary>
internal static class ChannelPeer
{
    public static readonly TimeSpan ClosedTimeout = TimeSpan.FromSeconds(20);

    public static async Task<Socket> ConnectAsync(string path)
    {
        var peer = ChannelSocket.CreateSocket();
        try
        {
            await peer.ConnectAsync(new UnixDomainSocketEndPoint(path)).WaitAsync(TimeSpan.FromSeconds(10));
            return peer;
        }
        catch
        {
            peer.Dispose();
            throw;
        }
    }

    // Sized to the token, so a test can also build one larger than a frame may be.
    public static byte[] Hello(int pid, string token) => HelloFrame.Write(new byte[HelloFrame.SizeFor(token)], pid, token).ToArray();

    /// <summary>True when the other end closed (end of stream or reset) within the timeout; false if it is still open.</summary>
    public static async Task<bool> WaitClosedAsync(Socket peer, TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        var buffer = new byte[FrameLimits.MaxFrameSize];
        try
        {
            while (await peer.ReceiveAsync(buffer, SocketFlags.None, cancel.Token) > 0)
            {
                // a control answer (e.g. to a request that parsed) comes before the close
            }

            return true;
        }
        catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Starts a process as uid/gid 65534 (nobody) with no supplementary groups; the test must run as root.</summary>
    public static Process StartAsNobody(string fileName, IEnumerable<string> arguments, IDictionary<string, string> environment)
    {
        var startInfo = new ProcessStartInfo("setpriv")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[] { "--reuid=65534", "--regid=65534", "--clear-groups", fileName }.Concat(arguments))
        {
            startInfo.ArgumentList.Add(argument);
        }

        startInfo.Environment["DOTNET_CLI_HOME"] = "/tmp";
        startInfo.Environment["HOME"] = "/tmp";
        foreach (var (key, value) in environment)
        {
            startInfo.Environment[key] = value;
        }

        return Process.Start(startInfo)!;
    }
}
