using System.Buffers.Binary;
using System.Text;

namespace KestrelCluster.Protocol;

// Reads one received frame (or a payload inside one); any field past the end throws InvalidFrameException, which
// drops that peer (or that payload) only. The one way the repo reads an integer, a string or a blob off the wire.
internal ref struct FrameReader
{
    private static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly ReadOnlySpan<byte> _frame;
    // Names what is read in errors: "Acks frame", "hub payload".
    private readonly string? _what;
    private int _position;

    public FrameReader(ReadOnlySpan<byte> frame)
    {
        Type = TypeOf(frame);
        _frame = frame;
        _position = 1;
    }

    // A frame that must be of one type: its decoder's first check.
    public FrameReader(ReadOnlySpan<byte> frame, FrameType expected)
        : this(frame)
    {
        if (Type != expected)
        {
            throw new InvalidFrameException($"expected {expected}, got frame type {(byte)Type}");
        }
    }

    private FrameReader(ReadOnlySpan<byte> payload, string what)
    {
        _frame = payload;
        _what = what;
    }

    /// <summary>Reads bytes that have no type byte of their own (a payload carried inside a frame).</summary>
    public static FrameReader ForPayload(ReadOnlySpan<byte> payload, string what) => new(payload, what);

    public static FrameType TypeOf(ReadOnlySpan<byte> frame)
        => frame.IsEmpty ? throw new InvalidFrameException("empty frame") : (FrameType)frame[0];

    public FrameType Type { get; }

    public readonly int Remaining => _frame.Length - _position;

    private readonly string What => _what ?? $"{Type} frame";

    public byte ReadByte() => Take(1)[0];

    public ushort ReadUInt16() => BinaryPrimitives.ReadUInt16LittleEndian(Take(2));

    public int ReadInt32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));

    public long ReadInt64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));

    /// <summary>A length (i32) and that many bytes.</summary>
    public ReadOnlySpan<byte> ReadPrefixedBytes() => Take(ReadLength());

    /// <summary>A length (i32) and that many bytes of UTF-8.</summary>
    public string ReadPrefixedString() => Decode(Take(ReadLength()));

    /// <summary>The rest of the frame, its last field.</summary>
    public ReadOnlySpan<byte> ReadRemaining()
    {
        var rest = _frame[_position..];
        _position = _frame.Length;
        return rest;
    }

    /// <summary>The rest of the frame as UTF-8, its last field.</summary>
    public string ReadRemainingString() => Decode(ReadRemaining());

    public readonly void EnsureEnd()
    {
        if (_position != _frame.Length)
        {
            throw new InvalidFrameException($"{What} has {Remaining} unexpected trailing bytes");
        }
    }

    private readonly string Decode(ReadOnlySpan<byte> text)
    {
        try
        {
            return Strict.GetString(text);
        }
        catch (DecoderFallbackException)
        {
            throw new InvalidFrameException($"{What} text is not valid UTF-8");
        }
    }

    /// <summary>A length or a count (i32) of what follows: never negative, never more than the bytes left.</summary>
    public int ReadLength()
    {
        var length = ReadInt32();
        if (length < 0 || length > Remaining)
        {
            throw new InvalidFrameException($"{What} length {length} out of bounds");
        }

        return length;
    }

    private ReadOnlySpan<byte> Take(int count)
    {
        if (_frame.Length - _position < count)
        {
            throw new InvalidFrameException($"{What} is truncated");
        }

        var span = _frame.Slice(_position, count);
        _position += count;
        return span;
    }
}
