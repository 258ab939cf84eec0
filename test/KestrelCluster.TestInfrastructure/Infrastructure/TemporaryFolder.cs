namespace KestrelCluster.Tests.Infrastructure;

/// <summary>A private folder under /tmp, deleted with everything in it on dispose.</summary>
public sealed class TemporaryFolder : IDisposable
{
    public string Path { get; } = TestPaths.NewTempDirectory();

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
