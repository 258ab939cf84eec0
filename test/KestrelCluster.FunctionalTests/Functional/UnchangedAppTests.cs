using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

/// <summary>
/// pm2 clusters an unmodified Node app; kestrel-cluster runs an app that never heard of it: the supervisor's
/// startup hook adds the transport to a framework-dependent app that lacks `builder.WebHost.UseClusterTransport()`.
/// </summary>
public sealed partial class UnchangedAppTests(TemplateApps apps, ITestOutputHelper output) : IClassFixture<TemplateApps>
{
    [Fact]
    public async Task WebTemplate_WithoutTheLine_BothWorkersJoinAndAnswer()
    {
        var app = await apps.GetAsync("web");
        Assert.False(File.Exists(Path.Combine(Path.GetDirectoryName(app.Dll)!, "KestrelCluster.Transport.dll")), "the template app must not carry the transport");

        await using var run = ClusterRun.Start(output, ["-w", "2", "--urls", "http://127.0.0.1:0", "--", TestPaths.Dotnet, app.Dll], appendSampleCommand: false, workingDirectory: app.Folder);
        // Ready is something only a worker on the supervisor's channel can report.
        await run.WaitForLineAsync(AllReady(), ClusterRun.StartTimeout);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{run.Port}");
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal("Hello World!", await client.GetStringAsync("/"));
        }

        var workers = await run.ListAsync();
        Assert.Equal(2, workers.Select(w => w.Pid).Distinct().Count());
        Assert.All(workers, w => Assert.True(w.TotalConnections >= 1, $"worker {w.Id} (pid {w.Pid}) served no connection"));
        Assert.Equal([0, 1], workers.Select(w => w.Id).Order());
        Assert.All(workers, w => Assert.Equal(w.Id.ToString(), ProcessInfo.EnvironmentOf(w.Pid).GetValueOrDefault("KESTREL_CLUSTER_WORKER_ID")));
    }

    // The templates of the issue, each clustered without the line: every worker serves a request.
    [Theory]
    [InlineData("webapi", "", "/weatherforecast")]
    [InlineData("webapi", "--use-controllers", "/weatherforecast")]
    [InlineData("mvc", "", "/")]
    [InlineData("grpc", "", "/greet.Greeter/SayHello")]
    public async Task Template_WithoutTheLine_EveryWorkerAnswers(string template, string options, string path)
    {
        var app = await apps.GetAsync(template, options.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        var grpc = template == "grpc";
        // gRPC needs HTTP/2; without TLS that is h2c, which Kestrel speaks on an endpoint limited to HTTP/2.
        var environment = grpc ? new Dictionary<string, string> { ["Kestrel__EndpointDefaults__Protocols"] = "Http2" } : null;

        await using var run = ClusterRun.Start(output, ["-w", "2", "--urls", "http://127.0.0.1:0", "--", TestPaths.Dotnet, app.Dll], environment, appendSampleCommand: false, workingDirectory: app.Folder);
        await run.WaitForLineAsync(AllReady(), ClusterRun.StartTimeout);
        for (var i = 0; i < 4; i++)
        {
            // A new connection each time, so round-robin hands them to both workers.
            using var client = Http.NewConnectionClient($"http://127.0.0.1:{run.Port}");
            if (grpc)
            {
                Assert.Equal("0", await SayHelloAsync(client, path));
            }
            else
            {
                using var response = await client.GetAsync(path);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }
        }

        var workers = await run.ListAsync();
        Assert.Equal(2, workers.Select(w => w.Pid).Distinct().Count());
        Assert.All(workers, w => Assert.True(w.TotalConnections >= 1, $"worker {w.Id} (pid {w.Pid}) served no connection"));
    }

    // Razor Pages and Blazor Server run as a server runs them: published, in Production, where the generated static
    // assets (scoped CSS bundle, blazor.web.js, fingerprinted names) come only from the publish's wwwroot.
    [Theory]
    [InlineData("webapp", "", ".styles.css", "/js/site.")]
    [InlineData("blazor", "--interactivity Server", ".styles.css", "/_framework/blazor.web.")]
    public async Task PublishedTemplate_InProduction_PageAndItsGeneratedAssetsAnswerFromEveryWorker(string template, string options, string scopedCss, string script)
    {
        var app = template == "webapp" ? await WebAppWithFormAsync() : await apps.GetPublishedAsync(template, options.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        await using var run = ClusterRun.Start(output, ["-w", "2", "--urls", "http://127.0.0.1:0", "--", TestPaths.Dotnet, app.Dll], Production(), appendSampleCommand: false, workingDirectory: app.Folder);
        await run.WaitForLineAsync(AllReady(), ClusterRun.StartTimeout);
        var workers = new ServedBy(run);
        await workers.StartAsync();
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{run.Port}");

        var (_, home) = await workers.GetAsync(client, "/");
        List<string> assets;
        using (home)
        {
            assets = AssetUrls(await home.Content.ReadAsStringAsync());
        }

        output.WriteLine($"assets: {string.Join(' ', assets)}");
        Assert.Contains(assets, a => a.EndsWith(scopedCss, StringComparison.Ordinal));
        Assert.Contains(assets, a => a.StartsWith(script, StringComparison.Ordinal));
        foreach (var path in (string[])["/", .. assets])
        {
            // Each on a new connection, tied to the worker that served it, until both workers have answered it.
            var answeredBy = new HashSet<int>();
            for (var i = 0; i < 6 && answeredBy.Count < 2; i++)
            {
                var (pid, response) = await workers.GetAsync(client, path);
                using (response)
                {
                    Assert.True(response.StatusCode == HttpStatusCode.OK, $"{path} from worker {pid}: {(int)response.StatusCode}");
                    Assert.NotEmpty(await response.Content.ReadAsByteArrayAsync());
                }

                answeredBy.Add(pid);
            }

            Assert.Equal(workers.Pids.Order(), answeredBy.Order());
        }

        Assert.DoesNotContain(run.Lines, l => l.Contains("fail:") || l.Contains("exited unexpectedly"));
    }

    // The data protection fix, end to end with a real template: a Razor Pages form (antiforgery validated on POST by
    // default) rendered by one worker and posted to the other, with no writable HOME (no per-user key folder).
    [Fact]
    public async Task WebAppTemplate_FormFromOneWorkerPostedToTheOther_IsAcceptedWithNoWritableHome()
    {
        var app = await WebAppWithFormAsync();
        using var home = new TemporaryFolder();
        var environment = Production();
        environment["HOME"] = Path.Combine(home.Path, "home-is-a-file");
        File.WriteAllText(environment["HOME"], "");
        await using var run = ClusterRun.Start(output, ["-w", "2", "--urls", "http://127.0.0.1:0", "--", TestPaths.Dotnet, app.Dll], environment, appendSampleCommand: false, workingDirectory: app.Folder);
        await run.WaitForLineAsync(AllReady(), ClusterRun.StartTimeout);
        var workers = new ServedBy(run);
        await workers.StartAsync();
        // The client keeps the antiforgery cookie, as a browser does.
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{run.Port}");

        var (madeBy, form) = await workers.SendAsync(client, () => new HttpRequestMessage(HttpMethod.Get, "/Form"));
        string token;
        using (form)
        {
            Assert.Equal(HttpStatusCode.OK, form.StatusCode);
            Assert.Contains(form.Headers.GetValues("Set-Cookie"), c => c.StartsWith(".AspNetCore.Antiforgery.", StringComparison.Ordinal));
            token = RequestVerificationToken().Match(await form.Content.ReadAsStringAsync()).Groups[1].Value;
        }

        Assert.NotEmpty(token);
        var answers = new List<(int Pid, HttpStatusCode Status, string Body)>();
        for (var i = 0; i < 10 && answers.All(a => a.Pid == madeBy); i++)
        {
            var (pid, response) = await workers.SendAsync(client, () => new HttpRequestMessage(HttpMethod.Post, "/Form")
            {
                Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["__RequestVerificationToken"] = token, ["text"] = "hi" }),
            });
            using (response)
            {
                answers.Add((pid, response.StatusCode, await response.Content.ReadAsStringAsync()));
            }
        }

        var other = Assert.Single(answers, a => a.Pid != madeBy);
        Assert.True(other.Status == HttpStatusCode.OK, $"worker {other.Pid} refused the form worker {madeBy} made: {(int)other.Status} {other.Body}");
        Assert.Equal("posted hi", other.Body);
        Assert.Single(Directory.GetFiles(Path.Combine(run.RuntimeFolder, "keys"), "key-*.xml"));
    }

    // Blazor Server's circuit is a SignalR connection: negotiate gives a connection token that only the worker that
    // issued it knows, and the WebSocket comes on a new connection. The negotiating worker's kc-worker cookie routes
    // that one to it, with the default round-robin as with sticky.
    [Theory]
    [InlineData("round-robin")]
    [InlineData("sticky")]
    public async Task BlazorServerTemplate_CircuitWebSocket_ReachesTheWorkerThatNegotiated(string balance)
    {
        var app = await apps.GetPublishedAsync("blazor", ["--interactivity", "Server"]);
        await using var run = ClusterRun.Start(output, ["-w", "2", "--balance", balance, "--urls", "http://127.0.0.1:0", "--", TestPaths.Dotnet, app.Dll], Production(), appendSampleCommand: false, workingDirectory: app.Folder);
        await run.WaitForLineAsync(AllReady(), ClusterRun.StartTimeout);
        var workers = new ServedBy(run);
        await workers.StartAsync();

        var attempts = new List<(int NegotiatedBy, int UpgradedBy, HttpStatusCode Status)>();
        for (var i = 0; i < 4; i++)
        {
            // A new client each time (its own cookies), as a new browser is.
            var cookies = new CookieContainer();
            using var client = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.Zero, CookieContainer = cookies }) { BaseAddress = new Uri($"http://127.0.0.1:{run.Port}"), Timeout = Http.RequestTimeout };
            client.DefaultRequestHeaders.ConnectionClose = true;
            var (negotiatedBy, negotiate) = await workers.SendAsync(client, () => new HttpRequestMessage(HttpMethod.Post, "/_blazor/negotiate?negotiateVersion=1"));
            string connectionToken;
            using (negotiate)
            {
                Assert.Equal(HttpStatusCode.OK, negotiate.StatusCode);
                using var json = System.Text.Json.JsonDocument.Parse(await negotiate.Content.ReadAsStringAsync());
                connectionToken = json.RootElement.GetProperty("connectionToken").GetString()!;
            }

            using var socket = new System.Net.WebSockets.ClientWebSocket();
            socket.Options.CollectHttpResponseDetails = true;
            socket.Options.Cookies = cookies;
            using var timeout = new CancellationTokenSource(Http.RequestTimeout);
            try
            {
                await socket.ConnectAsync(new Uri($"ws://127.0.0.1:{run.Port}/_blazor?id={Uri.EscapeDataString(connectionToken)}"), timeout.Token);
            }
            catch (System.Net.WebSockets.WebSocketException)
            {
                // refused: the status says why
            }

            attempts.Add((negotiatedBy, await workers.WorkerOfLastConnectionAsync("WebSocket upgrade"), socket.HttpStatusCode));
        }

        output.WriteLine(string.Join("\n", attempts));
        Assert.All(attempts, a => Assert.Equal((a.NegotiatedBy, HttpStatusCode.SwitchingProtocols), (a.UpgradedBy, a.Status)));
        if (balance == "round-robin")
        {
            // New clients from one address still go to both workers: affinity is per client, not per address.
            Assert.Equal(2, attempts.Select(a => a.NegotiatedBy).Distinct().Count());
        }
    }

    // What a user does: the template's Counter page in a browser (the system's chromium, driven by Playwright), the
    // cluster with default settings, reached directly or through nginx configured as the README says. The circuit
    // must connect over WebSockets and count every click, also after the browser reloads the page, and new
    // browsers (all from one address) land on both.
    [Theory]
    [InlineData("direct")]
    [InlineData("nginx")]
    public async Task BlazorServerTemplate_DefaultSettings_CounterCountsInABrowserOverWebSockets(string via)
    {
        var app = await apps.GetPublishedAsync("blazor", ["--interactivity", "Server"]);
        await using var run = ClusterRun.Start(output, ["-w", "2", "--urls", "http://127.0.0.1:0", "--", TestPaths.Dotnet, app.Dll], Production(), appendSampleCommand: false, workingDirectory: app.Folder);
        await run.WaitForLineAsync(AllReady(), ClusterRun.StartTimeout);
        var slots = (await run.ListAsync()).Select(w => w.Id.ToString()).Order().ToList();
        await using var nginx = via == "nginx" ? await Nginx.StartAsync(output, Nginx.InFrontOfCluster(run.Port, "/_blazor")) : null;
        var port = nginx?.Port ?? run.Port;

        using var playwright = await Microsoft.Playwright.Playwright.CreateAsync().WaitAsync(TimeSpan.FromSeconds(60));
        await using var browser = await playwright.Chromium.LaunchAsync(new() { ExecutablePath = Chromium, Headless = true, Timeout = 60_000 });
        var started = System.Diagnostics.Stopwatch.StartNew();

        // One browser, its page loaded three times, a new circuit each time. Not necessarily on the same worker: the
        // supervisor routes a connection by its first request, and a reload may negotiate over a kept-alive connection
        // the browser opened before it had the cookie; the WebSocket then follows that negotiate (seen in CI).
        await using var first = await browser.NewContextAsync();
        var firstSlots = new List<string>();
        for (var load = 0; load < 3; load++)
        {
            firstSlots.Add(await CountOnCounterPageAsync(first, $"http://127.0.0.1:{port}/counter", clicks: 5));
        }

        // New browsers (all from 127.0.0.1) until one lands on the other worker.
        var seen = new HashSet<string>(firstSlots);
        for (var i = 0; i < 6 && seen.Count < 2; i++)
        {
            await using var other = await browser.NewContextAsync();
            seen.Add(await CountOnCounterPageAsync(other, $"http://127.0.0.1:{port}/counter", clicks: 2));
        }

        output.WriteLine($"circuits on worker slots {string.Join(", ", seen.Order())} in {started.Elapsed.TotalSeconds:F1} s");
        Assert.Equal(slots, seen.Order());
        Assert.DoesNotContain(run.Lines, l => l.Contains("fail:") || l.Contains("exited unexpectedly"));
    }

    private const string Chromium = "/usr/bin/chromium";

    // Loads the page, clicks its button until the circuit counts, then <paramref name="clicks"/> more times, each seen
    // on the page. Returns the worker slot the circuit lives on (the kc-worker cookie its negotiate set).
    private async Task<string> CountOnCounterPageAsync(Microsoft.Playwright.IBrowserContext context, string url, int clicks)
    {
        var page = await context.NewPageAsync();
        try
        {
            page.SetDefaultTimeout(30_000);
            var sockets = new List<string>();
            var fallbacks = new List<string>();
            page.WebSocket += (_, socket) => sockets.Add(socket.Url);
            // Server-Sent Events and long polling are plain requests to the hub with the connection's id.
            page.Request += (_, request) =>
            {
                if (request.Url.Contains("/_blazor?id=", StringComparison.Ordinal))
                {
                    fallbacks.Add($"{request.Method} {request.Url}");
                }
            };

            var response = await page.GotoAsync(url);
            Assert.Equal(200, response?.Status);
            var status = page.GetByRole(Microsoft.Playwright.AriaRole.Status);
            var button = page.GetByRole(Microsoft.Playwright.AriaRole.Button, new() { Name = "Click me" });

            // The page is prerendered: a click before the circuit is up does nothing, so click until one counts.
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            var count = 0;
            while ((count = CountIn(await status.TextContentAsync())) == 0)
            {
                Assert.True(DateTime.UtcNow < deadline, $"the circuit never counted a click (WebSockets: {string.Join(' ', sockets)}; other transports: {string.Join(' ', fallbacks)})");
                await button.ClickAsync();
                try
                {
                    await Microsoft.Playwright.Assertions.Expect(status).Not.ToHaveTextAsync("Current count: 0", new() { Timeout = 1_000 });
                }
                catch (Microsoft.Playwright.PlaywrightException)
                {
                    // not interactive yet
                }
            }

            for (var i = 1; i <= clicks; i++)
            {
                await button.ClickAsync();
                await Microsoft.Playwright.Assertions.Expect(status).ToHaveTextAsync($"Current count: {count + i}", new() { Timeout = 30_000 });
            }

            Assert.Equal([url[..url.IndexOf("/counter", StringComparison.Ordinal)].Replace("http://", "ws://") + "/_blazor"], sockets.Select(s => s[..s.IndexOf('?')]));
            Assert.Empty(fallbacks);
            var cookie = Assert.Single(await context.CookiesAsync(), c => c.Name == "kc-worker");
            return cookie.Value;
        }
        finally
        {
            await page.CloseAsync();
        }
    }

    private static int CountIn(string? status) => int.Parse(status!.Replace("Current count:", "", StringComparison.Ordinal).Trim());

    // `dotnet new webapp` published, with one page added: a form posting back to itself.
    private Task<TemplateApp> WebAppWithFormAsync() => apps.GetPublishedAsync("webapp", [], new Dictionary<string, string>
    {
        ["Pages/Form.cshtml"] = """
            @page
            <form method="post"><input name="text" /><button type="submit">Send</button></form>
            @functions {
                public Microsoft.AspNetCore.Mvc.IActionResult OnPost(string text)
                    => Content("posted " + text);
            }
            """,
    });

    private static Dictionary<string, string> Production() => new() { ["ASPNETCORE_ENVIRONMENT"] = "Production" };

    // The page's stylesheets and scripts, as paths from the site's root (the pages use a base href of "/").
    private static List<string> AssetUrls(string html) => [.. AssetUrl().Matches(html)
        .Select(m => m.Groups[1].Value)
        .Where(u => !u.Contains("://"))
        .Select(u => "/" + u.TrimStart('~', '/'))
        .Distinct()];

    // Which worker served a request: the one whose connection count `list` shows grew. The template apps say
    // nothing of the process that answered, and round-robin alone is no proof of it.
    private sealed class ServedBy(ClusterRun run)
    {
        private Dictionary<int, long> _totals = [];

        public IEnumerable<int> Pids => _totals.Keys;

        public async Task StartAsync() => _totals = await TotalsAsync();

        public Task<(int Pid, HttpResponseMessage Response)> GetAsync(HttpClient client, string path)
            => SendAsync(client, () => new HttpRequestMessage(HttpMethod.Get, path));

        public async Task<(int Pid, HttpResponseMessage Response)> SendAsync(HttpClient client, Func<HttpRequestMessage> newRequest)
        {
            using var request = newRequest();
            var response = await client.SendAsync(request);
            return (await WorkerOfLastConnectionAsync($"{request.Method} {request.RequestUri}"), response);
        }

        /// <summary>The worker that took the one connection made since the last call.</summary>
        public async Task<int> WorkerOfLastConnectionAsync(string what)
        {
            var totals = await TotalsAsync();
            var grown = totals.Where(t => t.Value != _totals.GetValueOrDefault(t.Key)).ToList();
            Assert.True(grown.Count == 1 && grown[0].Value == _totals[grown[0].Key] + 1, $"one {what} on one connection, yet the counts went from {string.Join(", ", _totals)} to {string.Join(", ", totals)}");
            _totals = totals;
            return grown[0].Key;
        }

        private async Task<Dictionary<int, long>> TotalsAsync() => (await run.ListAsync()).ToDictionary(w => w.Pid, w => w.TotalConnections);
    }

    // One unary call over h2c (prior knowledge): HelloRequest { name = "x" } in a gRPC frame; returns grpc-status.
    private static async Task<string?> SayHelloAsync(HttpClient client, string path)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ByteArrayContent([0, 0, 0, 0, 3, 0x0A, 0x01, (byte)'x']),
        };
        request.Content.Headers.ContentType = new("application/grpc");
        request.Headers.TE.ParseAdd("trailers");
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        _ = await response.Content.ReadAsByteArrayAsync();
        return response.TrailingHeaders.TryGetValues("grpc-status", out var status) ? status.Single() : response.Headers.TryGetValues("grpc-status", out status) ? status.Single() : null;
    }

    [Fact]
    public async Task SampleWithTheLine_UnderTheHook_LoadsOnlyItsOwnTransport()
    {
        await using var run = await ClusterRun.StartReadyAsync(output, workers: 2);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{run.Port}");
        var answeredBy = new HashSet<int>();
        for (var i = 0; i < 4; i++)
        {
            answeredBy.Add(await Http.GetPidAsync(client));
        }

        Assert.Equal(run.WorkerPids.Order(), answeredBy.Order());
        foreach (var pid in run.WorkerPids)
        {
            // The hook ran, and yet the one transport in the process is the app's own copy.
            Assert.Single(MappedFiles(pid, "KestrelCluster.StartupHook.dll"));
            Assert.Equal([Path.Combine(Path.GetDirectoryName(TestPaths.SampleDll)!, "KestrelCluster.Transport.dll")], MappedFiles(pid, "KestrelCluster.Transport.dll"));
        }

        Assert.DoesNotContain(run.Lines, l => l.Contains("broke the channel protocol") || l.Contains("exited unexpectedly") || l.Contains("fail:"));
        Assert.Equal(2, run.Lines.Count(l => WorkerReady().IsMatch(l)));
    }

    [Fact]
    public async Task WithoutTheLine_HookOff_GivesUpNamingTheLineToAdd()
    {
        var app = await apps.GetAsync("web");
        // The port is taken, so a worker that binds it itself (no transport) fails at once, as it would beside a
        // supervisor that already listens there.
        using var taken = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        taken.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        taken.Listen();
        var port = ((IPEndPoint)taken.LocalEndPoint!).Port;

        await using var run = ClusterRun.Start(output, ["-w", "1", "--urls", $"http://127.0.0.1:{port}", "--", TestPaths.Dotnet, app.Dll],
            new Dictionary<string, string> { ["KESTREL_CLUSTER_STARTUP_HOOK"] = "0" }, appendSampleCommand: false, workingDirectory: app.Folder);

        Assert.Equal(1, await run.WaitForExitAsync(TimeSpan.FromSeconds(90)));
        var error = Assert.Single(run.ErrorLines, l => l.StartsWith("kestrel-cluster: error:"));
        Assert.Contains("never connected to the supervisor and bound its ports itself", error);
        Assert.Contains("builder.WebHost.UseClusterTransport()", error);
    }

    // Paths of the files named <paramref name="fileName"/> that the process has mapped (the assemblies it loaded).
    private static List<string> MappedFiles(int pid, string fileName) => [.. ProcessInfo.MappedFiles(pid).Where(f => Path.GetFileName(f) == fileName)];

    [GeneratedRegex("All 2 workers ready")]
    private static partial Regex AllReady();

    [GeneratedRegex(@"<(?:link rel=""stylesheet""|script[^>]*?) (?:href|src)=""([^""]+)""")]
    private static partial Regex AssetUrl();

    [GeneratedRegex(@"name=""__RequestVerificationToken"" type=""hidden"" value=""([^""]+)""")]
    private static partial Regex RequestVerificationToken();

    [GeneratedRegex(@"Worker \d+ ready \(pid")]
    private static partial Regex WorkerReady();
}
