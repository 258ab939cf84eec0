using BenchmarkDotNet.Attributes;
using KestrelCluster.Protocol;

namespace KestrelCluster.Benchmarks;

// The frames on the hot path: one Connections frame per passed connection, Acks from the worker.
[MemoryDiagnoser]
public class FrameCodecBenchmarks
{
    private readonly byte[] _buffer = new byte[FrameLimits.MaxFrameSize];

    [Params(1, 16)]
    public int Count { get; set; }

    [Benchmark]
    public long Connections_WriteThenRead()
    {
        var writer = new FrameWriter(_buffer, FrameType.Connections);
        writer.WriteByte((byte)Count);
        for (var i = 0; i < Count; i++)
        {
            writer.WriteInt32(0);
            writer.WriteInt64(i);
        }

        var reader = new FrameReader(writer.Written);
        var count = reader.ReadByte();
        long sum = 0;
        for (var i = 0; i < count; i++)
        {
            sum += reader.ReadInt32() + reader.ReadInt64();
        }

        reader.EnsureEnd();
        return sum;
    }

    [Benchmark]
    public long Acks_WriteThenRead()
    {
        var writer = new FrameWriter(_buffer, FrameType.Acks);
        writer.WriteUInt16((ushort)Count);
        for (var i = 0; i < Count; i++)
        {
            writer.WriteInt64(i);
            writer.WriteByte(1);
        }

        var reader = new FrameReader(writer.Written);
        var count = reader.ReadUInt16();
        long sum = 0;
        for (var i = 0; i < count; i++)
        {
            sum += reader.ReadInt64() + reader.ReadByte();
        }

        reader.EnsureEnd();
        return sum;
    }
}
