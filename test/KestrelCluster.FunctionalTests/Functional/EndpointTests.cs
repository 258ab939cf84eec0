using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

// Endpoints and protocols through the real supervisor and 2 workers: TLS, HTTP/2 (ALPN and prior
// knowledge), several endpoints at once, Unix sockets, and the addresses the workers report.
public sealed class EndpointTests(ITestOutputHelper output) : IDisposable
{
    private const int Workers = 2;

    // Round-robin reaches both workers within 2 new connections; the margin only guards against flakiness.
    private const int MaxAttemptsToReachEveryWorker = 20;

    // Certificates and Unix sockets of this test; a short path under /tmp (sun_path holds 108 bytes).
    private readonly string _directory = TestPaths.NewTempDirectory();

    public void Dispose()
    {
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [Fact]
    public async Task Https_CertificateFromEnvironment_BothWorkersAnswerOverTls()
    {
        var (pfxPath, password, thumbprint) = CreateSelfSignedCertificate();
        await using var cluster = await ClusterRun.StartReadyAsync(output, Workers, "https://127.0.0.1:0", CertificateEnvironment(pfxPath, password));

        var port = SingleTcpPort(cluster);
        var pids = await AskEveryWorkerAsync(cluster, async () =>
        {
            using var client = NewClient(TrustOnly(thumbprint), $"https://127.0.0.1:{port}");
            client.DefaultRequestHeaders.ConnectionClose = true;
            return await Http.GetPidAsync(client);
        });

        Assert.Equal(Workers, pids.Count);
    }

    [Fact]
    public async Task Http2OverTls_Http1AndHttp2WithVersionExact_AnswersWithHttp2FromBothWorkers()
    {
        var (pfxPath, password, thumbprint) = CreateSelfSignedCertificate();
        var environment = CertificateEnvironment(pfxPath, password);
        environment["Kestrel__EndpointDefaults__Protocols"] = "Http1AndHttp2";
        await using var cluster = await ClusterRun.StartReadyAsync(output, Workers, "https://127.0.0.1:0", environment);

        var port = SingleTcpPort(cluster);
        var versions = await AskEveryWorkerAsync(cluster, async () =>
        {
            using var client = NewHttp2Client(TrustOnly(thumbprint), $"https://127.0.0.1:{port}");
            return await GetPidAndVersionAsync(client);
        });

        Assert.Equal(Workers, versions.Count);
        Assert.All(versions.Values, version => Assert.Equal(HttpVersion.Version20, version));
    }

    [Fact]
    public async Task Http2PriorKnowledge_Http2OnlyPlainEndpoint_AnswersWithHttp2FromBothWorkers()
    {
        var environment = new Dictionary<string, string> { ["Kestrel__EndpointDefaults__Protocols"] = "Http2" };
        await using var cluster = await ClusterRun.StartReadyAsync(output, Workers, "http://127.0.0.1:0", environment);

        var port = SingleTcpPort(cluster);
        var versions = await AskEveryWorkerAsync(cluster, async () =>
        {
            // http:// with RequestVersionExact 2.0 is h2c with prior knowledge (no upgrade, no ALPN).
            using var client = NewHttp2Client(new SocketsHttpHandler(), $"http://127.0.0.1:{port}");
            return await GetPidAndVersionAsync(client);
        });

        Assert.Equal(Workers, versions.Count);
        Assert.All(versions.Values, version => Assert.Equal(HttpVersion.Version20, version));
    }

    [Fact]
    public async Task TwoEndpoints_IPv4AndIPv6PortZero_SupervisorListensOnBothAndBothAnswer()
    {
        // Without ::1 on this machine, a second IPv4 loopback address stands in for the IPv6 endpoint,
        // so the test still proves two endpoints at once (it only loses the IPv6 formatting check).
        var secondHost = IsIPv6LoopbackAvailable() ? "[::1]" : "127.0.0.2";
        await using var cluster = await ClusterRun.StartReadyAsync(output, Workers, $"http://127.0.0.1:0;http://{secondHost}:0");

        var listening = cluster.ListeningEndpoints();
        Assert.Equal(2, listening.Count);
        var first = Assert.Single(listening, e => e.StartsWith("127.0.0.1:", StringComparison.Ordinal));
        var second = Assert.Single(listening, e => e.StartsWith(secondHost + ":", StringComparison.Ordinal));
        Assert.All(listening, e => Assert.NotEqual(0, PortOf(e)));

        foreach (var endpoint in new[] { first, second })
        {
            var pids = await AskEveryWorkerAsync(cluster, async () =>
            {
                using var client = Http.NewConnectionClient($"http://{endpoint}");
                return await Http.GetPidAsync(client);
            });
            Assert.Equal(Workers, pids.Count);
        }
    }

    [Fact]
    public async Task UnixSocket_PathEndpoint_SupervisorListensAndBothWorkersAnswer()
    {
        var socketPath = Path.Combine(_directory, "app.sock");
        await using var cluster = await ClusterRun.StartReadyAsync(output, Workers, $"http://unix:{socketPath}");

        Assert.Equal($"unix:{socketPath}", Assert.Single(cluster.ListeningEndpoints()));
        var pids = await AskEveryWorkerAsync(cluster, async () =>
        {
            using var client = NewUnixSocketClient(socketPath);
            return await Http.GetPidAsync(client);
        });

        Assert.Equal(Workers, pids.Count);
    }

    [Fact]
    public async Task UnixSocket_GracefulStop_RemovesTheSocketFile()
    {
        var socketPath = Path.Combine(_directory, "app.sock");
        await using var cluster = await ClusterRun.StartReadyAsync(output, Workers, $"http://unix:{socketPath}");
        using (var client = NewUnixSocketClient(socketPath))
        {
            await Http.GetPidAsync(client);
        }

        Assert.True(File.Exists(socketPath));
        cluster.Signal(ProcessInfo.SIGTERM);

        Assert.Equal(0, await cluster.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        // Otherwise the next run on this path fails with "address already in use" (as Kestrel alone would).
        Assert.False(File.Exists(socketPath), $"{socketPath} is still there after the supervisor stopped");
    }

    [Fact]
    public async Task ServerAddresses_TcpPortZero_EveryWorkerReportsTheRealPort()
    {
        await using var cluster = await ClusterRun.StartReadyAsync(output, Workers, "http://127.0.0.1:0");

        var port = SingleTcpPort(cluster);
        var addresses = await AskEveryWorkerAsync(cluster, async () =>
        {
            using var client = Http.NewConnectionClient($"http://127.0.0.1:{port}");
            return await GetClusterInfoAsync(client);
        });

        Assert.Equal(Workers, addresses.Count);
        Assert.All(addresses.Values, a => Assert.Equal(new[] { $"http://127.0.0.1:{port}" }, a));
    }

    [Fact]
    public async Task ServerAddresses_UnixSocket_EveryWorkerReportsTheSocketPath()
    {
        var socketPath = Path.Combine(_directory, "app.sock");
        await using var cluster = await ClusterRun.StartReadyAsync(output, Workers, $"http://unix:{socketPath}");

        var addresses = await AskEveryWorkerAsync(cluster, async () =>
        {
            using var client = NewUnixSocketClient(socketPath);
            return await GetClusterInfoAsync(client);
        });

        // Kestrel reports "{scheme}://unix:{path}", as it does when it binds the socket itself.
        Assert.Equal(Workers, addresses.Count);
        Assert.All(addresses.Values, a => Assert.Equal(new[] { $"http://unix:{socketPath}" }, a));
    }

    // Asks over new connections until every worker has answered; returns each worker's answer by pid.
    private static async Task<Dictionary<int, T>> AskEveryWorkerAsync<T>(ClusterRun cluster, Func<Task<(int Pid, T Value)>> ask)
    {
        var answers = new Dictionary<int, T>();
        for (var attempt = 0; attempt < MaxAttemptsToReachEveryWorker && answers.Count < Workers; attempt++)
        {
            var (pid, value) = await ask();
            answers[pid] = value;
        }

        Assert.All(answers.Keys, pid => Assert.Contains(pid, cluster.WorkerPids));
        return answers;
    }

    private static Task<Dictionary<int, int>> AskEveryWorkerAsync(ClusterRun cluster, Func<Task<int>> ask)
        => AskEveryWorkerAsync(cluster, async () => { var pid = await ask(); return (pid, pid); });

    private static async Task<(int Pid, Version Version)> GetPidAndVersionAsync(HttpClient client)
    {
        using var response = await client.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadAsStringAsync();
        Assert.StartsWith("Hello from ", body);
        return (int.Parse(body["Hello from ".Length..]), response.Version);
    }

    // GET /cluster: the worker's pid and the addresses in its IServerAddressesFeature.
    private static async Task<(int Pid, string[] Addresses)> GetClusterInfoAsync(HttpClient client)
    {
        using var response = await client.GetAsync("/cluster");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var addresses = json.RootElement.GetProperty("addresses").EnumerateArray().Select(a => a.GetString()!).ToArray();
        return (json.RootElement.GetProperty("pid").GetInt32(), addresses);
    }

    private static int SingleTcpPort(ClusterRun cluster)
    {
        var port = PortOf(Assert.Single(cluster.ListeningEndpoints()));
        Assert.NotEqual(0, port);
        return port;
    }

    private static int PortOf(string endpoint) => int.Parse(endpoint[(endpoint.LastIndexOf(':') + 1)..]);

    private static HttpClient NewClient(HttpMessageHandler handler, string baseAddress)
        => new(handler) { BaseAddress = new Uri(baseAddress), Timeout = Http.RequestTimeout };

    // A new client per request is a new connection; "Connection: close" is not allowed in HTTP/2.
    private static HttpClient NewHttp2Client(SocketsHttpHandler handler, string baseAddress)
    {
        var client = NewClient(handler, baseAddress);
        client.DefaultRequestVersion = HttpVersion.Version20;
        client.DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        return client;
    }

    // A client whose connections go to a Unix socket; the host in the URL only fills the Host header.
    private static HttpClient NewUnixSocketClient(string socketPath)
    {
        var handler = new SocketsHttpHandler
        {
            PooledConnectionLifetime = TimeSpan.Zero,
            ConnectCallback = async (_, cancellationToken) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        var client = NewClient(handler, "http://localhost");
        client.DefaultRequestHeaders.ConnectionClose = true;
        return client;
    }

    // Trusts exactly the test's certificate, nothing else (no machine trust store involved).
    private static SocketsHttpHandler TrustOnly(string sha256Thumbprint) => new()
    {
        PooledConnectionLifetime = TimeSpan.Zero,
        SslOptions = new SslClientAuthenticationOptions
        {
            RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                certificate is not null && string.Equals(certificate.GetCertHashString(HashAlgorithmName.SHA256), sha256Thumbprint, StringComparison.OrdinalIgnoreCase),
        },
    };

    private static Dictionary<string, string> CertificateEnvironment(string pfxPath, string password) => new()
    {
        ["Kestrel__Certificates__Default__Path"] = pfxPath,
        ["Kestrel__Certificates__Default__Password"] = password,
    };

    // A self-signed server certificate for 127.0.0.1 and localhost, as a password-protected PFX.
    private (string Path, string Password, string Thumbprint) CreateSelfSignedCertificate()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: false, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1", "Server Authentication")], critical: false));

        var now = DateTimeOffset.UtcNow;
        using var certificate = request.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(1));
        var password = Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
        var path = Path.Combine(_directory, "server.pfx");
        File.WriteAllBytes(path, certificate.Export(X509ContentType.Pfx, password));
        return (path, password, certificate.GetCertHashString(HashAlgorithmName.SHA256));
    }

    private static bool IsIPv6LoopbackAvailable()
    {
        if (!Socket.OSSupportsIPv6)
        {
            return false;
        }

        try
        {
            using var probe = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp);
            probe.Bind(new IPEndPoint(IPAddress.IPv6Loopback, 0));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
