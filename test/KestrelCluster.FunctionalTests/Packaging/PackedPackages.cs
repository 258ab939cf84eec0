using KestrelCluster.Tests.Infrastructure;
using System.Xml.Linq;

namespace KestrelCluster.Tests.Packaging;

/// <summary>The packaging test classes share one run of eng/pack.sh: its NativeAOT pack takes minutes.</summary>
[CollectionDefinition(Name)]
public sealed class PackagesCollection : ICollectionFixture<PackedPackages>
{
    public const string Name = "Packages";
}

/// <summary>
/// eng/pack.sh run once into a private temp folder, with a NuGet setup that sees only that folder: a private
/// global packages folder (a package cached from an earlier pack of the same version would hide this one) and a
/// config whose only source is the folder.
/// </summary>
public sealed class PackedPackages : IAsyncLifetime
{
    // Three packs of the libraries and three of the tool, one of them NativeAOT (2.5-3 minutes on a busy 2-core machine).
    public static readonly TimeSpan PackTimeout = TimeSpan.FromMinutes(12);
    public static readonly TimeSpan CommandTimeout = TimeSpan.FromMinutes(3);

    public string Root { get; } = TestPaths.NewTempDirectory();

    public string Folder => Path.Combine(Root, "packages");

    public string NuGetConfig => Path.Combine(Root, "nuget.config");

    public string PackOutput { get; private set; } = "";

    /// <summary>The folder of the `dotnet` running the tests, for a framework-dependent apphost (DOTNET_ROOT).</summary>
    public string DotnetRoot { get; } = Path.GetDirectoryName(Path.GetFullPath(ResolveLinks(TestPaths.Dotnet)))!;

    /// <summary>The one version, from Directory.Build.props.</summary>
    public string Version { get; } = XDocument.Load(Path.Combine(TestPaths.RepoRoot, "Directory.Build.props")).Descendants("Version").Single().Value;

    public async Task InitializeAsync()
    {
        File.WriteAllText(NuGetConfig, """
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
              </packageSources>
            </configuration>
            """);
        var (exitCode, output) = await RunAsync("bash", [Path.Combine(TestPaths.RepoRoot, "eng", "pack.sh"), Folder], TestPaths.RepoRoot, PackTimeout);
        PackOutput = output;
        if (exitCode != 0)
        {
            throw new InvalidOperationException($"eng/pack.sh failed ({exitCode}):\n{output}");
        }
    }

    /// <summary>
    /// Runs a command with the NuGet setup above (global packages in <paramref name="nugetPackages"/>, by default a
    /// folder shared by the tests) and no build servers; kills it (and its children) on timeout.
    /// </summary>
    public async Task<(int ExitCode, string Output)> RunAsync(string fileName, IEnumerable<string> arguments, string workingDirectory, TimeSpan timeout, string? nugetPackages = null)
    {
        var environment = ExternalCommand.NestedDotnetEnvironment();
        environment["NUGET_PACKAGES"] = nugetPackages ?? Path.Combine(Root, "nuget-cache");
        environment["DOTNET_ROOT"] = DotnetRoot;
        environment["KESTREL_CLUSTER_CHANNEL"] = null;

        var (exitCode, stdout, stderr) = await ExternalCommand.RunAsync(fileName, arguments, timeout, environment, workingDirectory);
        return (exitCode, stdout + stderr);
    }

    private static string ResolveLinks(string path)
    {
        if (!Path.IsPathRooted(path))
        {
            path = Environment.GetEnvironmentVariable("PATH")!.Split(':').Select(d => Path.Combine(d, path)).FirstOrDefault(File.Exists) ?? path;
        }

        return new FileInfo(path).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? path;
    }

    public Task DisposeAsync()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }

        return Task.CompletedTask;
    }
}
