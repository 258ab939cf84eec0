using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using KestrelCluster.Protocol;
using Microsoft.AspNetCore.SignalR;

namespace KestrelCluster.Transport.Backplane;

// What a Hub frame's payload asks of the workers that receive it.
internal enum HubCommand : byte
{
    // excluded connection ids, message
    All = 1,
    // connection ids, message
    Connections = 2,
    // group names, excluded connection ids, message
    Groups = 3,
    // user ids, message
    Users = 4,
    // ack id (i32), connection id, group: answered with Ack by the worker that holds the connection
    AddToGroup = 5,
    RemoveFromGroup = 6,
    // ack id (i32)
    Ack = 7,
    // ack id (i32), connection id, invocation id, message: a client result asked of a connection on another worker
    Invoke = 8,
    // invocation id, protocol name, outcome (u8: 0 no result, 1 result, 2 error), result bytes or error text
    Result = 9,
}

// A Hub frame's payload: hub name, command, then the command's fields. Strings are a length (i32) and UTF-8; a
// message is the invocation already serialized by every hub protocol the hub supports (as the Redis backplane
// does), so a worker writes it to JSON and MessagePack clients alike without knowing the arguments' types.
internal sealed class HubPayloadWriter
{
    private readonly ArrayBufferWriter<byte> _buffer = new(256);

    public HubPayloadWriter(string hub, HubCommand command)
    {
        WriteString(hub);
        WriteByte((byte)command);
    }

    public ReadOnlyMemory<byte> Written => _buffer.WrittenMemory;

    public void WriteByte(byte value)
    {
        _buffer.GetSpan(1)[0] = value;
        _buffer.Advance(1);
    }

    public void WriteInt32(int value)
    {
        BinaryPrimitives.WriteInt32LittleEndian(_buffer.GetSpan(4), value);
        _buffer.Advance(4);
    }

    public void WriteBytes(ReadOnlySpan<byte> value)
    {
        WriteInt32(value.Length);
        value.CopyTo(_buffer.GetSpan(value.Length));
        _buffer.Advance(value.Length);
    }

    public void WriteString(string value)
    {
        var length = Encoding.UTF8.GetByteCount(value);
        WriteInt32(length);
        Encoding.UTF8.GetBytes(value, _buffer.GetSpan(length));
        _buffer.Advance(length);
    }

    public void WriteStrings(IReadOnlyList<string>? values)
    {
        WriteInt32(values?.Count ?? 0);
        foreach (var value in values ?? [])
        {
            WriteString(value);
        }
    }

    public void WriteMessage(IReadOnlyList<SerializedMessage> message)
    {
        WriteByte((byte)message.Count);
        foreach (var serialized in message)
        {
            WriteString(serialized.ProtocolName);
            WriteBytes(serialized.Serialized.Span);
        }
    }
}

// Reads a payload; anything cut short or out of bounds throws InvalidFrameException, and that frame is dropped.
internal ref struct HubPayloadReader(ReadOnlySpan<byte> payload)
{
    private readonly ReadOnlySpan<byte> _payload = payload;
    private int _position;

    public byte ReadByte() => Take(1)[0];

    public int ReadInt32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));

    public byte[] ReadBytes() => Take(ReadLength()).ToArray();

    public string ReadString()
    {
        try
        {
            return Strict.GetString(Take(ReadLength()));
        }
        catch (DecoderFallbackException)
        {
            throw new InvalidFrameException("hub payload text is not valid UTF-8");
        }
    }

    public string[] ReadStrings()
    {
        var count = ReadLength();
        var values = new string[count];
        for (var i = 0; i < count; i++)
        {
            values[i] = ReadString();
        }

        return values;
    }

    public SerializedMessage[] ReadMessage()
    {
        var message = new SerializedMessage[ReadByte()];
        for (var i = 0; i < message.Length; i++)
        {
            message[i] = new SerializedMessage(ReadString(), ReadBytes());
        }

        return message;
    }

    private int ReadLength()
    {
        var length = ReadInt32();
        if (length < 0 || length > _payload.Length - _position)
        {
            throw new InvalidFrameException($"hub payload length {length} out of bounds");
        }

        return length;
    }

    private ReadOnlySpan<byte> Take(int count)
    {
        if (_payload.Length - _position < count)
        {
            throw new InvalidFrameException("hub payload is truncated");
        }

        var span = _payload.Slice(_position, count);
        _position += count;
        return span;
    }

    private static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
}
