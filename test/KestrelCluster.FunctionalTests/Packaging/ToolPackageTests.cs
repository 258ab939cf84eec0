using System.Diagnostics.Tracing;
using System.IO.Compression;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using KestrelCluster.Tests.Infrastructure;
using Microsoft.Diagnostics.NETCore.Client;
using Microsoft.Diagnostics.Tracing;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Packaging;

/// <summary>
/// The kestrel-cluster tool as a user gets it from the packed folder: `dotnet tool install` (or `dnx`) on linux-x64
/// installs the NativeAOT supervisor; kestrel-cluster.any is the framework-dependent build every other platform falls
/// back to; and the native supervisor's "KestrelCluster" meter is visible from outside, as dotnet-counters sees it.
/// </summary>
[Collection(PackagesCollection.Name)]
public sealed partial class ToolPackageTests(PackedPackages packages, ITestOutputHelper output)
{
    private const string HookFile = "KestrelCluster.StartupHook.dll";
    private const string TransportFile = "KestrelCluster.Transport.dll";

    // Every instrument of src/KestrelCluster.Supervisor/Admin/ClusterMetrics.cs.
    private static readonly string[] Instruments =
    [
        "kestrel_cluster.accepted_connections",
        "kestrel_cluster.accept_thread.accepted_connections",
        "kestrel_cluster.dispatched_connections",
        "kestrel_cluster.redispatched_connections",
        "kestrel_cluster.refused_connections",
        "kestrel_cluster.expired_connections",
        "kestrel_cluster.worker.restarts",
        "kestrel_cluster.worker.count",
        "kestrel_cluster.worker.active_connections",
        "kestrel_cluster.worker.accepted_connections",
        "kestrel_cluster.generation",
        "kestrel_cluster.handoff.duration",
    ];

    [Fact]
    public void Pack_ToolPackage_PointsAtTheNativeLinuxX64PackageAndTheAnyFallback()
    {
        // The package users name lists the RID-specific packages; the CLI picks the closest RID, `any` elsewhere.
        var settings = XDocument.Parse(Entry("kestrel-cluster", "tools/any/any/DotnetToolSettings.xml"));
        Assert.Equal(
            ["any=kestrel-cluster.any", "linux-x64=kestrel-cluster.linux-x64"],
            settings.Descendants("RuntimeIdentifierPackage").Select(p => $"{p.Attribute("RuntimeIdentifier")?.Value}={p.Attribute("Id")?.Value}").Order(StringComparer.Ordinal));

        // linux-x64: one native executable, run directly, with the hook and the transport beside it; no IL supervisor,
        // and no 20 MB of native debug symbols in every download.
        var native = Entries("kestrel-cluster.linux-x64");
        Assert.Contains("tools/any/linux-x64/kestrel-cluster", native);
        Assert.Contains($"tools/any/linux-x64/{HookFile}", native);
        Assert.Contains($"tools/any/linux-x64/{TransportFile}", native);
        Assert.DoesNotContain(native, e => e.EndsWith("kestrel-cluster.dll", StringComparison.Ordinal) || e.EndsWith(".dbg", StringComparison.Ordinal));
        Assert.Contains("Runner=\"executable\"", Entry("kestrel-cluster.linux-x64", "tools/any/linux-x64/DotnetToolSettings.xml"));

        // any: the framework-dependent build, run by `dotnet`, with the same two files.
        var any = Entries("kestrel-cluster.any");
        Assert.Contains("tools/net10.0/any/kestrel-cluster.dll", any);
        Assert.Contains($"tools/net10.0/any/{HookFile}", any);
        Assert.Contains($"tools/net10.0/any/{TransportFile}", any);
        Assert.Contains("Runner=\"dotnet\"", Entry("kestrel-cluster.any", "tools/net10.0/any/DotnetToolSettings.xml"));
    }

    [Fact]
    public async Task ToolInstall_OnLinuxX64_IsTheNativeSupervisorAndServesAnApp()
    {
        var command = await InstallAsync("kestrel-cluster", "native");
        var toolFolder = Path.GetDirectoryName(command)!;
        var executable = new FileInfo(command).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? command;

        Assert.True(IsElf(executable), $"{executable} is not an ELF executable");
        Assert.Empty(Directory.GetFiles(toolFolder, "kestrel-cluster.dll", SearchOption.AllDirectories));
        // The startup hook (apps without UseClusterTransport()) is found beside the executable itself.
        Assert.True(File.Exists(Path.Combine(Path.GetDirectoryName(executable)!, HookFile)), $"no {HookFile} beside {executable}");

        var (versionExit, version) = await packages.RunAsync(command, ["--version"], packages.Root, PackedPackages.CommandTimeout);
        Assert.Equal(0, versionExit);
        Assert.StartsWith(packages.Version, version.Trim());

        await using var run = ClusterRun.Start(output, ["-w", "1", "--urls", "http://127.0.0.1:0"], supervisorCommand: [command]);
        await run.WaitForLineAsync(AllReady(), ClusterRun.StartTimeout);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{run.Port}");

        var answeredBy = await Http.GetPidAsync(client);

        Assert.Equal([answeredBy], run.WorkerPids);
        // The supervisor is that native program, with no runtime loaded from the shared framework ...
        Assert.Equal(executable, File.ResolveLinkTarget($"/proc/{run.Pid}/exe", returnFinalTarget: false)?.FullName);
        Assert.DoesNotContain(ProcessInfo.MappedFiles(run.Pid), f => f.EndsWith("libcoreclr.so", StringComparison.Ordinal));
        // ... and its worker loaded the startup hook shipped beside it.
        Assert.Contains(Path.Combine(Path.GetDirectoryName(executable)!, HookFile), ProcessInfo.MappedFiles(answeredBy));

        run.Signal(ProcessInfo.SIGTERM);
        Assert.Equal(0, await run.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.True(await ProcessInfo.WaitUntilGoneAsync([answeredBy], TimeSpan.FromSeconds(10)), "the worker outlived the native supervisor's stop");
    }

    [Fact]
    public async Task ToolInstall_AnyPackage_IsTheFrameworkDependentBuildAndServesAnApp()
    {
        // What a platform without a native package (linux-arm64, linux-musl-arm64, ...) installs. The CLI cannot be
        // made to pick it on this machine (--arch is refused for Linux RIDs), so install it by its own id.
        var command = await InstallAsync("kestrel-cluster.any", "any");
        var toolFolder = Path.GetDirectoryName(command)!;
        var dll = Assert.Single(Directory.GetFiles(toolFolder, "kestrel-cluster.dll", SearchOption.AllDirectories));
        Assert.True(File.Exists(Path.Combine(Path.GetDirectoryName(dll)!, HookFile)), $"no {HookFile} beside {dll}");

        var (versionExit, version) = await packages.RunAsync(command, ["--version"], packages.Root, PackedPackages.CommandTimeout);
        Assert.Equal(0, versionExit);
        Assert.StartsWith(packages.Version, version.Trim());

        await using var run = ClusterRun.Start(output, ["-w", "1", "--urls", "http://127.0.0.1:0"], new Dictionary<string, string>
        {
            ["DOTNET_ROOT"] = packages.DotnetRoot,
        }, supervisorCommand: [command]);
        await run.WaitForLineAsync(AllReady(), ClusterRun.StartTimeout);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{run.Port}");

        var answeredBy = await Http.GetPidAsync(client);

        Assert.Equal([answeredBy], run.WorkerPids);
        // The supervisor runs the packaged IL on the shared framework's runtime.
        var mapped = ProcessInfo.MappedFiles(run.Pid);
        Assert.Contains(dll, mapped);
        Assert.Contains(mapped, f => f.EndsWith("libcoreclr.so", StringComparison.Ordinal) && f.Contains("/shared/Microsoft.NETCore.App/", StringComparison.Ordinal));
        Assert.Contains(Path.Combine(Path.GetDirectoryName(dll)!, HookFile), ProcessInfo.MappedFiles(answeredBy));
    }

    [Fact]
    public async Task Dnx_OnLinuxX64_RunsTheNativeSupervisor()
    {
        var cache = Path.Combine(packages.Root, "dnx-cache");

        var (exit, version) = await packages.RunAsync(TestPaths.Dotnet,
            ["dnx", "--source", packages.Folder, "--configfile", packages.NuGetConfig, $"kestrel-cluster@{packages.Version}", "--", "--version"],
            packages.Root, PackedPackages.CommandTimeout, nugetPackages: cache);
        output.WriteLine(version);

        Assert.True(exit == 0, $"dotnet dnx failed ({exit}): {version}");
        Assert.StartsWith(packages.Version, version.Trim());
        // dnx restored the native package for this machine, not the fallback.
        Assert.True(IsElf(Path.Combine(cache, "kestrel-cluster.linux-x64", packages.Version, "tools", "any", "linux-x64", "kestrel-cluster")), "dnx did not restore the native package");
        Assert.False(Directory.Exists(Path.Combine(cache, "kestrel-cluster.any")), "dnx restored the framework-dependent fallback on linux-x64");
    }

    [Fact]
    public async Task EventPipe_NativeSupervisor_PublishesEveryKestrelClusterInstrument()
    {
        var command = await InstallAsync("kestrel-cluster", "counters");
        await using var run = ClusterRun.Start(output, ["-w", "1", "--urls", "http://127.0.0.1:0"], supervisorCommand: [command]);
        await run.WaitForLineAsync(AllReady(), ClusterRun.StartTimeout);
        Assert.DoesNotContain(ProcessInfo.MappedFiles(run.Pid), f => f.EndsWith("libcoreclr.so", StringComparison.Ordinal));

        // The diagnostics IPC socket is there, as `dotnet-counters ps` finds it ...
        Assert.Contains(run.Pid, DiagnosticsClient.GetPublishedProcesses());

        // ... and a session like `dotnet-counters monitor --counters KestrelCluster` gets the meter's values.
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var client = new DiagnosticsClient(run.Pid);
        var provider = new EventPipeProvider("System.Diagnostics.Metrics", EventLevel.Informational, keywords: 0x2, arguments: new Dictionary<string, string>
        {
            ["SessionId"] = Guid.NewGuid().ToString("N"),
            ["Metrics"] = "KestrelCluster",
            ["RefreshInterval"] = "1",
            ["MaxTimeSeries"] = "100",
            ["MaxHistograms"] = "10",
        });
        using var session = await client.StartEventPipeSessionAsync([provider], requestRundown: false, circularBufferMB: 16, timeout.Token);
        var published = new HashSet<string>(StringComparer.Ordinal);
        var allSeen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var reading = Task.Run(() =>
        {
            using var source = new EventPipeEventSource(session.EventStream);
            source.Dynamic.All += e =>
            {
                // Value events (rate, gauge, histogram) name the meter and the instrument they report.
                if (e.EventName?.EndsWith("ValuePublished", StringComparison.Ordinal) == true && e.PayloadByName("meterName") as string == "KestrelCluster" && e.PayloadByName("instrumentName") is string instrument)
                {
                    lock (published)
                    {
                        published.Add(instrument);
                        if (Instruments.All(published.Contains))
                        {
                            allSeen.TrySetResult();
                        }
                    }
                }
            };
            source.Process();
        });

        // Traffic while the session runs, so the handoff histogram has values to publish.
        using var http = Http.NewConnectionClient($"http://127.0.0.1:{run.Port}");
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!allSeen.Task.IsCompleted && DateTime.UtcNow < deadline)
        {
            await Http.GetPidAsync(http);
            await Task.WhenAny(allSeen.Task, Task.Delay(250));
        }

        await session.StopAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
        await reading.WaitAsync(TimeSpan.FromSeconds(30));
        lock (published)
        {
            output.WriteLine($"published: {string.Join(", ", published.Order(StringComparer.Ordinal))}");
            Assert.Equal(Instruments.Order(StringComparer.Ordinal), published.Order(StringComparer.Ordinal));
        }
    }

    /// <summary>`dotnet tool install --tool-path` from the packed folder alone; returns the command's path.</summary>
    private async Task<string> InstallAsync(string packageId, string folder)
    {
        var toolPath = Path.Combine(packages.Root, "tools-" + folder);
        var (exit, installOutput) = await packages.RunAsync(TestPaths.Dotnet,
            ["tool", "install", "--tool-path", toolPath, "--add-source", packages.Folder, "--configfile", packages.NuGetConfig, packageId, "--version", packages.Version],
            packages.Root, PackedPackages.CommandTimeout);
        output.WriteLine(installOutput);
        Assert.True(exit == 0, $"dotnet tool install {packageId} failed ({exit}): {installOutput}");
        return Path.Combine(toolPath, "kestrel-cluster");
    }

    private static bool IsElf(string path)
    {
        if (!File.Exists(path))
        {
            return false;
        }

        Span<byte> magic = stackalloc byte[4];
        using var file = File.OpenRead(path);
        return file.Read(magic) == 4 && magic.SequenceEqual("\u007fELF"u8);
    }

    private IReadOnlyList<string> Entries(string id)
    {
        using var zip = ZipFile.OpenRead(Path.Combine(packages.Folder, $"{id}.{packages.Version}.nupkg"));
        return [.. zip.Entries.Select(e => e.FullName)];
    }

    private string Entry(string id, string path)
    {
        using var zip = ZipFile.OpenRead(Path.Combine(packages.Folder, $"{id}.{packages.Version}.nupkg"));
        var entry = zip.GetEntry(path);
        Assert.True(entry is not null, $"{id} has no {path}: {string.Join(", ", zip.Entries.Select(e => e.FullName))}");
        using var reader = new StreamReader(entry.Open());
        return reader.ReadToEnd();
    }

    [GeneratedRegex("All 1 workers ready")]
    private static partial Regex AllReady();
}
