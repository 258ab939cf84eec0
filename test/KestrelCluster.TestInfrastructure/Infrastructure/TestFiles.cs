using Microsoft.Win32.SafeHandles;

namespace KestrelCluster.Tests.Infrastructure;

/// <summary>
/// Real file descriptors for code that takes ownership of raw fds (and closes them). Each fd is a distinct
/// file, so /proc/self/fd tells whether that very fd is still open even after its number has been reused.
/// Whatever is still open at dispose is closed.
/// </summary>
internal sealed class TestFiles : IDisposable
{
    private readonly string _directory = TestPaths.NewTempDirectory();
    private readonly List<TestFd> _opened = [];

    public TestFd Open()
    {
        var path = Path.Combine(_directory, $"fd-{_opened.Count}");
        using var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite);
        var fd = new TestFd((int)handle.DangerousGetHandle(), path);
        // From here the raw fd belongs to the test (and then to the code under test), not to the handle.
        handle.SetHandleAsInvalid();
        _opened.Add(fd);
        return fd;
    }

    public IReadOnlyList<TestFd> Open(int count) => [.. Enumerable.Range(0, count).Select(_ => Open())];

    /// <summary>
    /// How many fds of this process point at one of these files: the test's own plus every copy passed to the code
    /// under test (SCM_RIGHTS) that it has not closed. Counted by target, so other tests' fds do not count.
    /// </summary>
    public int OpenFdsToThem()
    {
        var paths = _opened.Select(f => f.Path).ToHashSet();
        return Directory.GetFiles("/proc/self/fd").Count(fd =>
        {
            try
            {
                return new FileInfo(fd).LinkTarget is { } target && paths.Contains(target);
            }
            catch (IOException)
            {
                return false;
            }
        });
    }

    public void Dispose()
    {
        foreach (var fd in _opened.Where(f => f.IsOpen))
        {
            new SafeFileHandle(fd.Fd, ownsHandle: true).Dispose();
        }

        Directory.Delete(_directory, recursive: true);
    }
}

internal sealed record TestFd(int Fd, string Path)
{
    public bool IsOpen
    {
        get
        {
            try
            {
                return new FileInfo($"/proc/self/fd/{Fd}").LinkTarget == Path;
            }
            catch (IOException)
            {
                return false;
            }
        }
    }

    public override string ToString() => $"fd {Fd} ({System.IO.Path.GetFileName(Path)})";
}
