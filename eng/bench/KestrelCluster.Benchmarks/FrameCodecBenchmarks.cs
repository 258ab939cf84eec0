using BenchmarkDotNet.Attributes;
using KestrelCluster.Protocol;

namespace KestrelCluster.Benchmarks;

// The frames on the hot path: one Connections frame per passed connection, Acks from the worker.
[MemoryDiagnoser]
public class FrameCodecBenchmarks
{
    private readonly byte[] _buffer = new byte[FrameLimits.MaxFrameSize];
    private readonly long[] _sequences = Enumerable.Range(0, FrameLimits.MaxFdsPerFrame).Select(i => (long)i).ToArray();

    [Params(1, 16)]
    public int Count { get; set; }

    [Benchmark]
    public long Connections_WriteThenRead()
    {
        var writer = ConnectionsFrame.Begin(_buffer, Count);
        for (var i = 0; i < Count; i++)
        {
            ConnectionsFrame.Add(ref writer, 0, i);
        }

        var reader = ConnectionsFrame.Read(writer.Written, out var count);
        long sum = 0;
        for (var i = 0; i < count; i++)
        {
            var (listenerId, sequence) = ConnectionsFrame.Next(ref reader);
            sum += listenerId + sequence;
        }

        return sum;
    }

    [Benchmark]
    public long Acks_WriteThenRead()
    {
        var reader = AcksFrame.Read(AcksFrame.Write(_buffer, _sequences.AsSpan(0, Count), accepted: true), out var count);
        long sum = 0;
        for (var i = 0; i < count; i++)
        {
            var (sequence, accepted) = AcksFrame.Next(ref reader);
            sum += sequence + (accepted ? 1 : 0);
        }

        reader.EnsureEnd();
        return sum;
    }
}
