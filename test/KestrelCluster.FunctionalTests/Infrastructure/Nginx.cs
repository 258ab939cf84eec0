using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Infrastructure;

/// <summary>
/// The system's nginx (Debian's package) in the foreground with its own config, pid file and temp folders in a
/// private folder, listening on a free port of 127.0.0.1. Its master and workers are killed by pid on dispose.
/// </summary>
internal sealed class Nginx : IAsyncDisposable
{
    public const string Executable = "/usr/sbin/nginx";

    private readonly TemporaryFolder _folder;
    private readonly Process _process;
    private readonly ITestOutputHelper _output;

    private Nginx(TemporaryFolder folder, Process process, int port, ITestOutputHelper output)
    {
        _folder = folder;
        _process = process;
        Port = port;
        _output = output;
    }

    public int Port { get; }

    public int Pid => _process.Id;

    /// <summary>
    /// The README's configuration in front of a cluster on <paramref name="clusterPort"/>: the hub at
    /// <paramref name="hubPath"/> on an upstream without keepalive (each request its own connection, routed by its
    /// kc-worker cookie), everything else on kept-alive upstream connections, Blazor's `/_blazor/initializers` too.
    /// </summary>
    public static string InFrontOfCluster(int clusterPort, string hubPath) => $$"""
            map $http_upgrade $connection_upgrade { default upgrade; '' close; }
            upstream cluster_keepalive { server 127.0.0.1:{{clusterPort}}; keepalive 8; }
            upstream cluster_hubs { server 127.0.0.1:{{clusterPort}}; }
            server {
                listen 127.0.0.1:{port};
                location {{hubPath}} {
                    proxy_pass http://cluster_hubs;
                    proxy_http_version 1.1;
                    proxy_set_header Upgrade $http_upgrade;
                    proxy_set_header Connection $connection_upgrade;
                    proxy_set_header Host $host;
                    proxy_read_timeout 1h;
                }
                # Blazor's script fetches this before it negotiates: kept off the hub upstream, or every browser
                # opens two cookie-less connections there and round-robin puts all their circuits on one worker.
                location /_blazor/initializers {
                    proxy_pass http://cluster_keepalive;
                    proxy_http_version 1.1;
                    proxy_set_header Connection "";
                }
                location / {
                    proxy_pass http://cluster_keepalive;
                    proxy_http_version 1.1;
                    proxy_set_header Connection "";
                    proxy_set_header Host $host;
                }
            }
        """;

    /// <summary>
    /// Starts nginx with <paramref name="http"/> as the body of its `http` block; `{port}` in it is replaced by the
    /// port nginx listens on. A port taken between choosing and binding it makes nginx exit: tried again, three times.
    /// </summary>
    public static async Task<Nginx> StartAsync(ITestOutputHelper output, string http)
    {
        for (var attempt = 1; ; attempt++)
        {
            var folder = new TemporaryFolder();
            var port = FreePort();
            var config = Path.Combine(folder.Path, "nginx.conf");
            File.WriteAllText(config, $$"""
                worker_processes 1;
                daemon off;
                pid {{folder.Path}}/nginx.pid;
                error_log {{folder.Path}}/error.log warn;
                events { worker_connections 1024; }
                http {
                    access_log off;
                    client_body_temp_path {{folder.Path}}/body;
                    proxy_temp_path {{folder.Path}}/proxy;
                    fastcgi_temp_path {{folder.Path}}/fastcgi;
                    uwsgi_temp_path {{folder.Path}}/uwsgi;
                    scgi_temp_path {{folder.Path}}/scgi;
                {{http.Replace("{port}", port.ToString())}}
                }
                """);
            var startInfo = new ProcessStartInfo(Executable) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var argument in (string[])["-p", folder.Path, "-c", config, "-e", Path.Combine(folder.Path, "error.log")])
            {
                startInfo.ArgumentList.Add(argument);
            }

            var process = Process.Start(startInfo)!;
            process.OutputDataReceived += (_, e) => Log(output, e.Data);
            process.ErrorDataReceived += (_, e) => Log(output, e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            var nginx = new Nginx(folder, process, port, output);
            try
            {
                // The master listens before it forks its worker: ready once both are there.
                await Wait.UntilAsync(() => process.HasExited || (Accepts(port) && ProcessInfo.ChildrenOf(process.Id).Count > 0), TimeSpan.FromSeconds(30));
                if (!process.HasExited)
                {
                    return nginx;
                }
            }
            catch
            {
                await nginx.DisposeAsync();
                throw;
            }

            var errors = nginx.ErrorLog();
            await nginx.DisposeAsync();
            if (attempt == 3 || !errors.Contains("Address already in use", StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"nginx exited ({process.ExitCode}): {errors}");
            }
        }
    }

    public string ErrorLog()
    {
        var path = Path.Combine(_folder.Path, "error.log");
        return File.Exists(path) ? File.ReadAllText(path) : "";
    }

    public async ValueTask DisposeAsync()
    {
        // Stopped first, the master forks no worker after its children are read, and they are still its children.
        List<int> pids = [];
        if (!_process.HasExited)
        {
            ProcessInfo.Signal(_process.Id, ProcessInfo.SIGSTOP);
            pids = [.. ProcessInfo.ChildrenOf(_process.Id), _process.Id];
        }

        foreach (var pid in pids)
        {
            ProcessInfo.Signal(pid, ProcessInfo.SIGKILL);
        }

        await ProcessInfo.WaitUntilGoneAsync(pids, TimeSpan.FromSeconds(10));
        Log(_output, ErrorLog());
        _process.Dispose();
        _folder.Dispose();
    }

    private static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    private static bool Accepts(int port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Connect(IPAddress.Loopback, port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static void Log(ITestOutputHelper output, string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return;
        }

        try
        {
            output.WriteLine($"[nginx] {text.TrimEnd()}");
        }
        catch (InvalidOperationException)
        {
            // The test has finished; its output helper is closed.
        }
    }
}
