using System.Reflection;

namespace HelloCluster.Tests.Infrastructure;

/// <summary>Where the sample lives, from the values MSBuild stamped into this assembly at build time.</summary>
internal static class SamplePaths
{
    private static string Metadata(string key)
        => typeof(SamplePaths).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value
           ?? throw new InvalidOperationException($"assembly metadata '{key}' has no value");

    public static string RepoRoot { get; } = Path.GetFullPath(Metadata("RepoRoot"));

    public static string Configuration { get; } = Metadata("Configuration");

    public static string TargetFramework { get; } = Metadata("TargetFramework");

    public static string SampleDirectory { get; } = Path.Combine(RepoRoot, "samples", "HelloCluster");

    public static string SampleDll { get; } = Path.Combine(SampleDirectory, "bin", Configuration, TargetFramework, "HelloCluster.dll");

    /// <summary>The dotnet host that runs the tests (set by the dotnet CLI), else the one on PATH.</summary>
    public static string Dotnet { get; } = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
}
