using KestrelCluster.Supervisor.Workers;
using KestrelCluster.Tests.Infrastructure;

namespace KestrelCluster.Tests.Workers;

public sealed class WorkerWorkingDirectoryTests : IDisposable
{
    private readonly TemporaryFolder _folder = new();

    private string Release => Path.Combine(_folder.Path, "releases", "v1");

    private string Current => Path.Combine(_folder.Path, "current");

    public WorkerWorkingDirectoryTests()
    {
        Directory.CreateDirectory(Release);
        Directory.CreateDirectory(Path.Combine(_folder.Path, "other"));
        File.CreateSymbolicLink(Current, Path.Combine("releases", "v1"));
    }

    [Fact]
    public void Resolve_PwdIsASymlinkToTheCurrentFolder_KeepsTheSymlinkPath()
    {
        Assert.Equal(Current, WorkerWorkingDirectory.Resolve(Current, Release));
    }

    [Fact]
    public void Resolve_PwdThroughASymlinkedParent_KeepsTheLogicalPath()
    {
        Directory.CreateDirectory(Path.Combine(Release, "app"));

        Assert.Equal(Path.Combine(Current, "app"), WorkerWorkingDirectory.Resolve(Path.Combine(Current, "app"), Path.Combine(Release, "app")));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("current")]
    [InlineData("other")]
    [InlineData("missing")]
    public void Resolve_PwdDoesNotNameTheCurrentFolder_PhysicalFolder(string? pwd)
    {
        // A stale PWD (the shell moved on, or a parent set it for another folder) must not win.
        var given = pwd is null or "" or "current" ? pwd : Path.Combine(_folder.Path, pwd);

        Assert.Equal(Release, WorkerWorkingDirectory.Resolve(given, Release));
    }

    [Fact]
    public void Resolve_CurrentSwitchedToAnotherRelease_PhysicalFolder()
    {
        var v2 = Path.Combine(_folder.Path, "releases", "v2");
        Directory.CreateDirectory(v2);
        File.Delete(Current);
        File.CreateSymbolicLink(Current, v2);

        Assert.Equal(Release, WorkerWorkingDirectory.Resolve(Current, Release));
    }

    public void Dispose() => _folder.Dispose();
}
