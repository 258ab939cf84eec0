using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;
using KestrelCluster.Supervisor.Accept;

namespace KestrelCluster.Supervisor.Upgrade;

/// <summary>What the upgrade reports to the supervisor loop.</summary>
internal enum UpgradeProgress
{
    // the new supervisor's workers are all ready
    Ready,
    // it has taken the control socket and accepts
    TookOver,
    // it failed (Reason says why), exited, or did not get ready in time
    Failed,
}

internal sealed class UpgradeStartException(string message) : Exception(message);

// The running supervisor's side of `kestrel-cluster upgrade` (nginx's binary upgrade, HAProxy's -x): start the
// supervisor executable now on disk, hand it every listening socket over a private Unix socket, and let it take
// over once its workers are ready. Until then this supervisor serves alone; if the new one fails, it is stopped
// and nothing changes.
internal sealed class SupervisorUpgrade : IDisposable
{
    private const string SocketName = "upgrade.sock";
    private static readonly TimeSpan HelloTimeout = TimeSpan.FromSeconds(60);

    private readonly Socket _listener;
    private readonly string _socketPath;
    private readonly string _token = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
    private readonly Process _process;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Action<UpgradeProgress, string?> _report;
    private ChannelSocket? _peer;
    private int _reported;

    private SupervisorUpgrade(Socket listener, string socketPath, Process process, Action<UpgradeProgress, string?> report)
    {
        _listener = listener;
        _socketPath = socketPath;
        _process = process;
        _report = report;
    }

    public int Pid => _process.Id;

    public string CommandLine { get; private init; } = "";

    public bool HasTakenOver { get; private set; }

    /// <summary>Starts the new supervisor; throws <see cref="UpgradeStartException"/> when it cannot be started at all.</summary>
    /// <param name="to">The supervisor to start (an executable or a .dll); null: the one this process runs, as it is on disk now.</param>
    /// <param name="arguments">Its `run` arguments; null: this process's own.</param>
    public static SupervisorUpgrade Start(
        string runtimeFolder,
        string clusterName,
        string? to,
        IReadOnlyList<string>? arguments,
        IReadOnlyList<ClusterListener> listeners,
        int nextGeneration,
        TimeSpan readyLimit,
        Action<UpgradeProgress, string?> report)
    {
        var (file, prefix) = SupervisorCommand(to);
        IReadOnlyList<string> runArguments = arguments is { Count: > 0 }
            ? (arguments[0] == "run" ? arguments : ["run", .. arguments])
            : Environment.GetCommandLineArgs()[1..];
        var socketPath = Path.Combine(runtimeFolder, SocketName);
        File.Delete(socketPath);
        var listener = ChannelSocket.CreateSocket();
        try
        {
            listener.Bind(new UnixDomainSocketEndPoint(socketPath));
            File.SetUnixFileMode(socketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            listener.Listen(1);
        }
        catch (SocketException ex)
        {
            listener.Dispose();
            throw new UpgradeStartException($"cannot listen on {socketPath}: {ex.Message}");
        }

        var startInfo = new ProcessStartInfo(file) { UseShellExecute = false };
        foreach (var argument in prefix.Concat(runArguments))
        {
            startInfo.ArgumentList.Add(argument);
        }

        // Its own variables come from the environment as it is now (a changed KESTREL_CLUSTER_* file is read again);
        // systemd's go with it: NOTIFY_SOCKET lets it notify once it is the main pid.
        startInfo.Environment.Remove("LISTEN_FDS");
        startInfo.Environment.Remove("LISTEN_PID");
        startInfo.Environment.Remove("LISTEN_FDNAMES");
        var upgrade = default(SupervisorUpgrade);
        Process process;
        try
        {
            startInfo.Environment[UpgradeEnvironment.Socket] = socketPath;
            startInfo.Environment[UpgradeEnvironment.Name] = clusterName;
            process = new Process { StartInfo = startInfo, EnableRaisingEvents = true };
            upgrade = new SupervisorUpgrade(listener, socketPath, process, report)
            {
                CommandLine = string.Join(' ', new[] { file }.Concat(startInfo.ArgumentList)),
            };
            startInfo.Environment[UpgradeEnvironment.Token] = upgrade._token;
            // A moment later: the reason it sends before it exits says more than its exit code.
            process.Exited += (_, _) => _ = Task.Delay(TimeSpan.FromSeconds(1), CancellationToken.None).ContinueWith(
                _ => upgrade.Fail($"the new supervisor (pid {SafePid(process)}) exited with code {SafeExitCode(process)} before it took over"),
                CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
            process.Start();
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            upgrade?.Dispose();
            listener.Dispose();
            File.Delete(socketPath);
            throw new UpgradeStartException($"cannot start {file}: {ex.Message}");
        }

        _ = Task.Run(() => upgrade.ServeAsync(listeners, nextGeneration, readyLimit));
        return upgrade;
    }

    // The supervisor as it is on disk now: `dotnet kestrel-cluster.dll` runs the dll again, an apphost or a NativeAOT
    // binary itself.
    private static (string File, IReadOnlyList<string> Prefix) SupervisorCommand(string? to)
    {
        var host = Environment.ProcessPath ?? "dotnet";
        var underDotnet = Path.GetFileNameWithoutExtension(host) == "dotnet";
        if (to is null)
        {
            return underDotnet ? (host, [Environment.GetCommandLineArgs()[0]]) : (host, []);
        }

        if (!File.Exists(to))
        {
            throw new UpgradeStartException($"no supervisor at {to}");
        }

        return to.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) ? (underDotnet ? host : "dotnet", [to]) : (to, []);
    }

    private async Task ServeAsync(IReadOnlyList<ClusterListener> listeners, int nextGeneration, TimeSpan readyLimit)
    {
        try
        {
            using var helloTimeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            helloTimeout.CancelAfter(HelloTimeout);
            Socket accepted;
            while (true)
            {
                accepted = await _listener.AcceptAsync(helloTimeout.Token).ConfigureAwait(false);
                var peer = new ChannelSocket(accepted);
                if (PeerCredentials.Of(accepted).UserId == Libc.GetEffectiveUserId()
                    && await ReceiveAsync(peer, helloTimeout.Token).ConfigureAwait(false) is (UpgradeFrame.Hello, var token, _)
                    && Workers.ChannelServer.TokensEqual(token, _token))
                {
                    _peer = peer;
                    break;
                }

                peer.Dispose();
            }

            foreach (var listener in listeners)
            {
                // Every socket of an accept-thread group: one left behind would reset its queue when this one exits.
                _peer.Send(UpgradeFrames.Encode(UpgradeFrame.Listener, listener.Requested), [.. listener.AcceptHandles.Select(h => (int)h)]);
            }

            _peer.Send(UpgradeFrames.Encode(UpgradeFrame.ListenersDone, nextGeneration.ToString(CultureInfo.InvariantCulture)));
            using var readyTimeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            readyTimeout.CancelAfter(readyLimit);
            var ready = false;
            while (true)
            {
                var (type, text, _) = await ReceiveAsync(_peer, ready ? _stopping.Token : readyTimeout.Token).ConfigureAwait(false);
                switch (type)
                {
                    case UpgradeFrame.Ready when !ready:
                        ready = true;
                        _report(UpgradeProgress.Ready, null);
                        break;
                    case UpgradeFrame.TookOver when ready:
                        HasTakenOver = true;
                        _report(UpgradeProgress.TookOver, null);
                        return;
                    case UpgradeFrame.Failed:
                        Fail(text);
                        return;
                    default:
                        Fail($"the new supervisor sent an unexpected message ({type})");
                        return;
                }
            }
        }
        catch (OperationCanceledException) when (!_stopping.IsCancellationRequested)
        {
            Fail($"the new supervisor (pid {Pid}) was not ready within {readyLimit.TotalSeconds:0} s");
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
        {
        }
        catch (Exception ex) when (ex is SocketException or InvalidFrameException)
        {
            Fail($"the connection to the new supervisor failed: {ex.Message}");
        }
    }

    // One frame; the end of the stream reads as a failure with the reason the new supervisor gave none.
    private static async Task<(UpgradeFrame Type, string Text, int[] Fds)> ReceiveAsync(ChannelSocket socket, CancellationToken cancellationToken)
    {
        var buffer = new byte[FrameLimits.MaxFrameSize];
        var fds = new int[FrameLimits.MaxFdsPerFrame];
        var (status, length, fdCount) = await socket.ReceiveOneAsync(buffer, fds, cancellationToken).ConfigureAwait(false);
        // Nothing from the new supervisor carries fds.
        ChannelSocket.CloseAll(fds.AsSpan(0, fdCount));
        if (status == ReceiveStatus.Closed)
        {
            return (UpgradeFrame.Failed, "the new supervisor closed the upgrade connection", []);
        }

        if (status != ReceiveStatus.Frame)
        {
            throw new InvalidFrameException("malformed upgrade frame");
        }

        var (type, text) = UpgradeFrames.Decode(buffer.AsSpan(0, length));
        return (type, text, []);
    }

    /// <summary>The new supervisor's workers are ready: it accepts from now on, and takes the control socket.</summary>
    public void SendTakeOver() => _peer?.Send(UpgradeFrames.Encode(UpgradeFrame.TakeOver));

    /// <summary>Connections accepted here that no worker took: the new supervisor dispatches them. Our fds are closed.</summary>
    public void SendConnections(string requested, ReadOnlySpan<int> fds)
    {
        try
        {
            for (var offset = 0; offset < fds.Length; offset += FrameLimits.MaxFdsPerFrame)
            {
                _peer?.Send(UpgradeFrames.Encode(UpgradeFrame.Connections, requested), fds[offset..Math.Min(fds.Length, offset + FrameLimits.MaxFdsPerFrame)]);
            }
        }
        catch (SocketException)
        {
            // The new supervisor is gone: these connections are lost with it.
        }
        finally
        {
            ChannelSocket.CloseAll(fds);
        }
    }

    private void Fail(string reason)
    {
        if (HasTakenOver || Interlocked.Exchange(ref _reported, 1) != 0)
        {
            return;
        }

        _report(UpgradeProgress.Failed, reason);
    }

    /// <summary>The upgrade failed: the new supervisor stops (its workers with it) and this one keeps serving.</summary>
    public void Abandon()
    {
        Interlocked.Exchange(ref _reported, 1);
        try
        {
            if (!_process.HasExited)
            {
                // SIGTERM: it drains the workers it started; it never accepted, so no client notices.
                Libc.Kill(_process.Id, Libc.SIGTERM);
            }
        }
        catch (InvalidOperationException)
        {
        }
    }

    private static string SafePid(Process process)
    {
        try
        {
            return process.Id.ToString(CultureInfo.InvariantCulture);
        }
        catch (InvalidOperationException)
        {
            return "?";
        }
    }

    private static string SafeExitCode(Process process)
    {
        try
        {
            return process.ExitCode.ToString(CultureInfo.InvariantCulture);
        }
        catch (InvalidOperationException)
        {
            return "?";
        }
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _listener.Dispose();
        _peer?.Dispose();
        try
        {
            File.Delete(_socketPath);
        }
        catch (IOException)
        {
        }

        _process.Dispose();
        _stopping.Dispose();
    }
}
