using KestrelCluster.Supervisor.Runtime;
using KestrelCluster.Tests.Infrastructure;

namespace KestrelCluster.Tests.Runtime;

public sealed class RuntimeDirectoryTests
{
    [Fact]
    public void Create_ChannelPathLongerThanAUnixSocketPath_RefusedNamingTheFixAndLeavesNoSocket()
    {
        using var root = new TemporaryFolder();
        var name = new string('n', 64 + 108 - root.Path.Length);

        var error = Assert.Throws<RuntimeFolderException>(() => RuntimeDirectory.Create(name, root.Path));

        Assert.Contains("too long for a Unix socket path", error.Message);
        Assert.Contains("--name", error.Message);
        Assert.Empty(Directory.EnumerateFiles(root.Path, "*", SearchOption.AllDirectories));
    }
}
