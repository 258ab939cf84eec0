using System.Buffers.Binary;
using System.Text;

namespace KestrelCluster.Protocol;

// Writes one frame into a caller-owned buffer (stackalloc on the hot path: no allocation per connection).
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

    public readonly ReadOnlySpan<byte> Written => _buffer[.._position];

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

    public void WriteString(string value) => _position += Encoding.UTF8.GetBytes(value, _buffer[_position..]);

    // Patches a byte written earlier (a count known only at the end).
    public readonly void SetByteAt(int offset, byte value) => _buffer[offset] = value;

    public readonly int Position => _position;
}
