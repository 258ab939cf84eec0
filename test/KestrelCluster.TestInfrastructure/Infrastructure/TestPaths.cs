using System.Reflection;

namespace KestrelCluster.Tests.Infrastructure;

internal static class TestPaths
{
    private static string Metadata(string key) => typeof(TestPaths).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;

    public static string RepoRoot { get; } = Path.GetFullPath(Metadata("RepoRoot"));

    public static string Configuration { get; } = Metadata("Configuration");

    public static string SupervisorDll { get; } = Path.Combine(RepoRoot, "src", "KestrelCluster.Supervisor", "bin", Configuration, "net10.0", "kestrel-cluster.dll");

    public static string SampleDirectory { get; } = Path.Combine(RepoRoot, "samples", "HelloCluster");

    public static string SampleDll { get; } = Path.Combine(SampleDirectory, "bin", Configuration, "net10.0", "HelloCluster.dll");

    /// <summary>test/TestApps/DataProtectionApp's build: an antiforgery form flow (GET and POST /form).</summary>
    public static string DataProtectionAppDll { get; } = Path.Combine(RepoRoot, "test", "TestApps", "DataProtectionApp", "bin", Configuration, "net10.0", "DataProtectionApp.dll");

    /// <summary>test/TestApps/ChatApp's build: a SignalR chat hub (/chat) with every Clients.* target; its WhoAmI names the worker and the transport.</summary>
    public static string ChatAppDll { get; } = Path.Combine(RepoRoot, "test", "TestApps", "ChatApp", "bin", Configuration, "net10.0", "ChatApp.dll");

    public static string Dotnet { get; } = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";

    /// <summary>A fresh private folder with a short path (Unix socket paths are limited to 108 bytes).</summary>
    public static string NewTempDirectory()
    {
        var path = Path.Combine("/tmp", "kct-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }
}
