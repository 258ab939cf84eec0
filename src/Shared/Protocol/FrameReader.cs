using System.Buffers.Binary;
using System.Text;

namespace KestrelCluster.Protocol;

// Reads one received frame; any field past the end throws InvalidFrameException, which drops that peer only.
internal ref struct FrameReader
{
    private readonly ReadOnlySpan<byte> _frame;
    private int _position;

    public FrameReader(ReadOnlySpan<byte> frame)
    {
        if (frame.IsEmpty)
        {
            throw new InvalidFrameException("empty frame");
        }

        _frame = frame;
        Type = (FrameType)frame[0];
        _position = 1;
    }

    public FrameType Type { get; }

    public readonly int Remaining => _frame.Length - _position;

    public byte ReadByte() => Take(1)[0];

    public ushort ReadUInt16() => BinaryPrimitives.ReadUInt16LittleEndian(Take(2));

    public int ReadInt32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));

    public long ReadInt64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));

    public string ReadRemainingString()
    {
        var text = _frame[_position..];
        _position = _frame.Length;
        try
        {
            return Strict.GetString(text);
        }
        catch (DecoderFallbackException)
        {
            throw new InvalidFrameException("text is not valid UTF-8");
        }
    }

    public readonly void EnsureEnd()
    {
        if (_position != _frame.Length)
        {
            throw new InvalidFrameException($"{Type} frame has {Remaining} unexpected trailing bytes");
        }
    }

    private ReadOnlySpan<byte> Take(int count)
    {
        if (_frame.Length - _position < count)
        {
            throw new InvalidFrameException($"{Type} frame is truncated");
        }

        var span = _frame.Slice(_position, count);
        _position += count;
        return span;
    }

    private static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
}
