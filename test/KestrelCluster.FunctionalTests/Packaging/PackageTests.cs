using KestrelCluster.Tests.Infrastructure;
using System.IO.Compression;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Packaging;

/// <summary>
/// What a user does with the library packages: build a project against KestrelCluster.Transport and
/// KestrelCluster.Testing restored from the packed folder. The tool package: ToolPackageTests.
/// </summary>
[Collection(PackagesCollection.Name)]
public sealed partial class PackageTests(PackedPackages packages, ITestOutputHelper output)
{
    [Fact]
    public void Pack_TwoLibrariesAndTheTool_OneVersionWithReadmesAndXmlDocs()
    {
        output.WriteLine(packages.PackOutput);

        var files = Directory.GetFiles(packages.Folder, "*.nupkg").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();

        // The tool is three packages: kestrel-cluster, which users name, and the two it points at (ToolPackageTests).
        Assert.Equal(
            [
                $"KestrelCluster.Testing.{packages.Version}.nupkg", $"KestrelCluster.Transport.{packages.Version}.nupkg",
                $"kestrel-cluster.{packages.Version}.nupkg", $"kestrel-cluster.any.{packages.Version}.nupkg", $"kestrel-cluster.linux-x64.{packages.Version}.nupkg",
            ],
            files);
        AssertEntries("KestrelCluster.Transport", "README.md", "lib/net10.0/KestrelCluster.Transport.dll", "lib/net10.0/KestrelCluster.Transport.xml");
        // The Testing package carries the supervisor assembly: the tool package cannot be a library dependency.
        AssertEntries("KestrelCluster.Testing", "README.md", "lib/net10.0/KestrelCluster.Testing.dll", "lib/net10.0/KestrelCluster.Testing.xml", "lib/net10.0/kestrel-cluster.dll");
        AssertEntries("kestrel-cluster", "README.md");
        Assert.DoesNotContain("<dependency id=\"kestrel-cluster\"", Nuspec("KestrelCluster.Testing"));
        // The public API analyzer checks this repository's builds; a consumer gets no dependency on it.
        Assert.All(new[] { "KestrelCluster.Transport", "KestrelCluster.Testing" }, id => Assert.DoesNotContain("PublicApiAnalyzers", Nuspec(id)));
        Assert.Contains("<packageType name=\"DotnetTool\"", Nuspec("kestrel-cluster"));
        Assert.All(new[] { "kestrel-cluster.any", "kestrel-cluster.linux-x64" }, id => Assert.Contains("<packageType name=\"DotnetToolRidPackage\"", Nuspec(id)));
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

    [GeneratedRegex(@"^workers: ([\d,]+)$", RegexOptions.Multiline)]
    private static partial Regex WorkersLine();

    [GeneratedRegex(@"^answer: (.+)$", RegexOptions.Multiline)]
    private static partial Regex AnswerLine();
}
