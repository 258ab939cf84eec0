using KestrelCluster.Tests.Infrastructure;
using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Packaging;

/// <summary>
/// What a user does with the packages: install the tool from a folder and run an app clustered with it, and
/// build a project against KestrelCluster.Transport and KestrelCluster.Testing restored from that folder.
/// </summary>
public sealed partial class PackageTests(PackedPackages packages, ITestOutputHelper output) : IClassFixture<PackedPackages>
{
    [Fact]
    public void Pack_ThreePackages_OneVersionWithReadmesAndXmlDocs()
    {
        output.WriteLine(packages.PackOutput);

        var files = Directory.GetFiles(packages.Folder, "*.nupkg").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();

        Assert.Equal([$"KestrelCluster.Testing.{packages.Version}.nupkg", $"KestrelCluster.Transport.{packages.Version}.nupkg", $"kestrel-cluster.{packages.Version}.nupkg"], files);
        AssertEntries("KestrelCluster.Transport", "README.md", "lib/net10.0/KestrelCluster.Transport.dll", "lib/net10.0/KestrelCluster.Transport.xml");
        // The Testing package carries the supervisor assembly: the tool package cannot be a library dependency.
        AssertEntries("KestrelCluster.Testing", "README.md", "lib/net10.0/KestrelCluster.Testing.dll", "lib/net10.0/KestrelCluster.Testing.xml", "lib/net10.0/kestrel-cluster.dll");
        // The startup hook and the transport it adds to apps without UseClusterTransport() ship beside the tool.
        AssertEntries("kestrel-cluster", "README.md", "tools/net10.0/any/DotnetToolSettings.xml", "tools/net10.0/any/kestrel-cluster.dll", "tools/net10.0/any/KestrelCluster.StartupHook.dll", "tools/net10.0/any/KestrelCluster.Transport.dll");
        Assert.DoesNotContain("<dependency id=\"kestrel-cluster\"", Nuspec("KestrelCluster.Testing"));
        Assert.Contains("<packageType name=\"DotnetTool\"", Nuspec("kestrel-cluster"));
    }

    [Fact]
    public async Task ToolInstall_FromLocalFolder_RunsTheSampleClusteredAndAnswers()
    {
        var toolPath = Path.Combine(packages.Root, "tools");
        var (installExit, installOutput) = await packages.RunAsync(TestPaths.Dotnet,
            ["tool", "install", "--tool-path", toolPath, "--add-source", packages.Folder, "--configfile", packages.NuGetConfig, "kestrel-cluster", "--version", packages.Version],
            packages.Root, PackedPackages.CommandTimeout);
        output.WriteLine(installOutput);
        Assert.True(installExit == 0, $"dotnet tool install failed ({installExit}): {installOutput}");
        var tool = Path.Combine(toolPath, "kestrel-cluster");

        var (versionExit, version) = await packages.RunAsync(tool, ["--version"], packages.Root, PackedPackages.CommandTimeout);
        Assert.Equal(0, versionExit);
        Assert.StartsWith(packages.Version, version.Trim());

        // ClusterRun adds `run --name <private name>` before and `-- dotnet HelloCluster.dll` after these.
        await using var run = ClusterRun.Start(output, ["-w", "2", "--urls", "http://127.0.0.1:0"], new Dictionary<string, string>
        {
            ["DOTNET_ROOT"] = Path.GetDirectoryName(Path.GetFullPath(new FileInfo(TestPaths.Dotnet).ResolveLinkTarget(true)?.FullName ?? TestPaths.Dotnet))!,
        }, supervisorCommand: [tool]);
        await run.WaitForLineAsync(AllReady(), ClusterRun.StartTimeout);
        using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{run.Port}"), Timeout = TimeSpan.FromSeconds(30) };

        var answer = await client.GetStringAsync("/");

        Assert.Equal(2, run.WorkerPids.Count);
        Assert.Contains(answer, run.WorkerPids.Select(pid => $"Hello from {pid}"));
        Assert.DoesNotContain(run.Pid, run.WorkerPids);
    }

    [Fact]
    public async Task ConsumerProject_RestoredFromLocalFolder_RunsClusterApplicationFactory()
    {
        var project = Path.Combine(packages.Root, "consumer");
        Directory.CreateDirectory(project);
        foreach (var file in Directory.GetFiles(Path.Combine(TestPaths.RepoRoot, "test", "PackageConsumer")))
        {
            File.Copy(file, Path.Combine(project, Path.GetFileName(file)));
        }

        var (buildExit, buildOutput) = await packages.RunAsync(TestPaths.Dotnet,
            ["build", project, "-c", "Release", "-o", Path.Combine(project, "out"), $"-p:KestrelClusterVersion={packages.Version}", $"-p:RestoreConfigFile={packages.NuGetConfig}", $"-p:RestoreAdditionalProjectSources={packages.Folder}", "-nologo", "-v", "q"],
            project, PackedPackages.CommandTimeout);
        output.WriteLine(buildOutput);
        Assert.True(buildExit == 0, $"the consumer's build failed ({buildExit}): {buildOutput}");

        var (runExit, runOutput) = await packages.RunAsync(TestPaths.Dotnet, [Path.Combine(project, "out", "PackageConsumer.dll")], project, PackedPackages.CommandTimeout);
        output.WriteLine(runOutput);

        Assert.Equal(0, runExit);
        var workers = WorkersLine().Match(runOutput).Groups[1].Value.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToList();
        Assert.Equal(2, workers.Count);
        Assert.Contains(AnswerLine().Match(runOutput).Groups[1].Value, workers.Select(pid => $"Hello from {pid}"));
        Assert.All(workers, pid => Assert.False(ProcessInfo.IsAlive(pid), $"worker pid {pid} outlived the consumer"));

        // The same program, ending without disposing its factory: the process-exit hook kills the workers.
        var (leakExit, leakOutput) = await packages.RunAsync(TestPaths.Dotnet, [Path.Combine(project, "out", "PackageConsumer.dll"), "--no-dispose"], project, PackedPackages.CommandTimeout);
        output.WriteLine(leakOutput);
        Assert.Equal(0, leakExit);
        var leaked = WorkersLine().Match(leakOutput).Groups[1].Value.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToList();
        Assert.Equal(2, leaked.Count);
        // SIGKILLed by the exit hook: gone within moments, not necessarily before the consumer's own exit is seen.
        Assert.True(await ProcessInfo.WaitUntilGoneAsync(leaked, TimeSpan.FromSeconds(10)), $"workers {string.Join(", ", leaked)} outlived a test process that never disposed its factory");
    }

    [Fact]
    public async Task NativeAotPublish_Supervisor_RunsTheSampleClusteredAndStopsOnSigterm()
    {
        // What README "Running it in production" tells users to run.
        var publish = Path.Combine(packages.Root, "aot");
        var rid = RuntimeInformation.OSArchitecture == Architecture.Arm64 ? "linux-arm64" : "linux-x64";
        var (publishExit, publishOutput) = await packages.RunAsync(TestPaths.Dotnet,
            ["publish", Path.Combine(TestPaths.RepoRoot, "src", "KestrelCluster.Supervisor"), "-c", "Release", "-r", rid, "-p:PublishAot=true", "-o", publish, "--artifacts-path", Path.Combine(packages.Root, "aot-build"), "-nologo", "-v", "q"],
            packages.Root, PackedPackages.PackTimeout);
        output.WriteLine(publishOutput);
        Assert.True(publishExit == 0, $"the NativeAOT publish failed ({publishExit}): {publishOutput}");
        // A native program, not an apphost next to IL.
        Assert.False(File.Exists(Path.Combine(publish, "kestrel-cluster.dll")), "the publish produced IL, not a NativeAOT binary");

        await using var run = ClusterRun.Start(output, ["-w", "2", "--urls", "http://127.0.0.1:0"], supervisorCommand: [Path.Combine(publish, "kestrel-cluster")]);
        await run.WaitForLineAsync(AllReady(), ClusterRun.StartTimeout);
        using var client = Http.NewConnectionClient($"http://127.0.0.1:{run.Port}");
        var answeredBy = new HashSet<int>();
        for (var i = 0; i < 4; i++)
        {
            answeredBy.Add(await Http.GetPidAsync(client));
        }

        Assert.Equal(run.WorkerPids.Order(), answeredBy.Order());
        var workers = run.WorkerPids;
        run.Signal(ProcessInfo.SIGTERM);
        Assert.Equal(0, await run.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.True(await ProcessInfo.WaitUntilGoneAsync(workers, TimeSpan.FromSeconds(10)), "a worker outlived the NativeAOT supervisor's stop");
    }

    private void AssertEntries(string id, params string[] expected)
    {
        using var zip = ZipFile.OpenRead(Path.Combine(packages.Folder, $"{id}.{packages.Version}.nupkg"));
        var entries = zip.Entries.Select(e => e.FullName).ToList();
        Assert.All(expected, path => Assert.Contains(path, entries));
    }

    private string Nuspec(string id)
    {
        using var zip = ZipFile.OpenRead(Path.Combine(packages.Folder, $"{id}.{packages.Version}.nupkg"));
        using var reader = new StreamReader(zip.GetEntry($"{id}.nuspec")!.Open());
        return reader.ReadToEnd();
    }

    [GeneratedRegex("All 2 workers ready")]
    private static partial Regex AllReady();

    [GeneratedRegex(@"^workers: ([\d,]+)$", RegexOptions.Multiline)]
    private static partial Regex WorkersLine();

    [GeneratedRegex(@"^answer: (.+)$", RegexOptions.Multiline)]
    private static partial Regex AnswerLine();
}
