using System.Buffers.Binary;
using System.Text;

namespace KestrelCluster.Protocol;

// Writes one frame (or a payload inside one) into a caller-owned buffer: stackalloc on the hot path, no allocation
// per connection. The one way the repo writes an integer, a string or a blob (PrefixedSize sizes a buffer for one).
internal ref struct FrameWriter
{
    private readonly Span<byte> _buffer;
    private int _position;

    public FrameWriter(Span<byte> buffer, FrameType type)
    {
        _buffer = buffer;
        _buffer[0] = (byte)type;
        _position = 1;
    }

    // Bytes with no type byte of their own (a payload carried inside a frame).
    public FrameWriter(Span<byte> buffer)
    {
        _buffer = buffer;
    }

    public readonly ReadOnlySpan<byte> Written => _buffer[.._position];

    public readonly int Position => _position;

    public static int PrefixedSize(int length) => sizeof(int) + length;

    public static int PrefixedSize(string value) => PrefixedSize(Encoding.UTF8.GetByteCount(value));

    public void WriteByte(byte value) => _buffer[_position++] = value;

    public void WriteUInt16(ushort value)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(_buffer[_position..], value);
        _position += 2;
    }

    public void WriteInt32(int value)
    {
        BinaryPrimitives.WriteInt32LittleEndian(_buffer[_position..], value);
        _position += 4;
    }

    public void WriteInt64(long value)
    {
        BinaryPrimitives.WriteInt64LittleEndian(_buffer[_position..], value);
        _position += 8;
    }

    /// <summary>A length (i32) and the bytes: read back by FrameReader.ReadPrefixedBytes.</summary>
    public void WritePrefixedBytes(ReadOnlySpan<byte> value)
    {
        WriteInt32(value.Length);
        WriteRemaining(value);
    }

    /// <summary>A length (i32) and the UTF-8: read back by FrameReader.ReadPrefixedString.</summary>
    public void WritePrefixedString(string value)
    {
        var lengthAt = _position;
        _position += sizeof(int);
        var length = Encoding.UTF8.GetBytes(value, _buffer[_position..]);
        BinaryPrimitives.WriteInt32LittleEndian(_buffer[lengthAt..], length);
        _position += length;
    }

    /// <summary>The frame's last field, unprefixed: read back by FrameReader.ReadRemaining.</summary>
    public void WriteRemaining(ReadOnlySpan<byte> value)
    {
        value.CopyTo(_buffer[_position..]);
        _position += value.Length;
    }

    /// <summary>The frame's last field as UTF-8, unprefixed: read back by FrameReader.ReadRemainingString.</summary>
    public void WriteRemainingString(string value) => _position += Encoding.UTF8.GetBytes(value, _buffer[_position..]);
}
