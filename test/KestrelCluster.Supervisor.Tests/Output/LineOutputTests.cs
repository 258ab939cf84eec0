using System.Text;
using KestrelCluster.Supervisor.Output;
using KestrelCluster.Tests.Infrastructure;

namespace KestrelCluster.Tests.Output;

public sealed class LineOutputTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Write_StdoutBlockedPastTheBuffer_NeverBlocksDropsTheRestAndMarksTheGapInOrder()
    {
        var stdout = new GatedStream();
        long reported = 0;
        using var output = new LineOutput(stdout, maxLines: 5);
        output.OnDropped(count => Interlocked.Add(ref reported, count));

        output.WriteLine("first");
        await Wait.UntilAsync(() => stdout.Blocked, Timeout);
        var writing = Task.Run(() =>
        {
            for (var i = 1; i <= 12; i++)
            {
                output.WriteLine($"line {i}");
            }
        });
        await writing.WaitAsync(Timeout);
        stdout.Open();
        await Wait.UntilAsync(() => Interlocked.Read(ref reported) > 0, Timeout);
        output.WriteLine("after");
        Assert.True(output.Complete(Timeout));

        Assert.Equal(
            ["first", "line 1", "line 2", "line 3", "line 4", "line 5", "kestrel-cluster: dropped 7 lines of output (stdout was blocked)", "after"],
            stdout.Lines());
        Assert.Equal(7, reported);
    }

    [Fact]
    public void Write_PiecesOfLines_WrittenAsWholeLines()
    {
        var stdout = new GatedStream();
        stdout.Open();
        using var output = new LineOutput(stdout);

        output.Write("info: ");
        output.Write("one\r\ntwo\nthr");
        output.Write('e');
        output.WriteLine("e");
        output.Write("unfinished");
        Assert.True(output.Complete(Timeout));

        Assert.Equal(["info: one", "two", "three", "unfinished"], stdout.Lines());
    }

    // A stdout whose writes block until it is opened, like a pipe nobody reads.
    private sealed class GatedStream : Stream
    {
        private readonly ManualResetEventSlim _open = new();
        private readonly MemoryStream _written = new();
        private volatile bool _blocked;

        public bool Blocked => _blocked;

        public void Open() => _open.Set();

        public IReadOnlyList<string> Lines()
        {
            lock (_written)
            {
                return Encoding.UTF8.GetString(_written.ToArray()).Split('\n')[..^1];
            }
        }

        public override void Write(byte[] buffer, int offset, int count)
        {
            _blocked = !_open.IsSet;
            _open.Wait(Timeout);
            _blocked = false;
            lock (_written)
            {
                _written.Write(buffer, offset, count);
            }
        }

        public override void Flush()
        {
        }

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
