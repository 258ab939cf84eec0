using System.Buffers;
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
// Grows as it is written (its size is known only at the end); each field goes through FrameWriter.
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
        var writer = Begin(sizeof(byte));
        writer.WriteByte(value);
        End(writer);
    }

    public void WriteInt32(int value)
    {
        var writer = Begin(sizeof(int));
        writer.WriteInt32(value);
        End(writer);
    }

    public void WriteBytes(ReadOnlySpan<byte> value)
    {
        var writer = Begin(FrameWriter.PrefixedSize(value.Length));
        writer.WritePrefixedBytes(value);
        End(writer);
    }

    public void WriteString(string value)
    {
        var writer = Begin(FrameWriter.PrefixedSize(value));
        writer.WritePrefixedString(value);
        End(writer);
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

    private FrameWriter Begin(int size) => new(_buffer.GetSpan(size));

    private void End(in FrameWriter writer) => _buffer.Advance(writer.Position);
}

// Reads a payload; anything cut short or out of bounds throws InvalidFrameException, and that frame is dropped.
internal ref struct HubPayloadReader(ReadOnlySpan<byte> payload)
{
    private FrameReader _reader = FrameReader.ForPayload(payload, "hub payload");

    public byte ReadByte() => _reader.ReadByte();

    public int ReadInt32() => _reader.ReadInt32();

    public byte[] ReadBytes() => _reader.ReadPrefixedBytes().ToArray();

    public string ReadString() => _reader.ReadPrefixedString();

    public string[] ReadStrings()
    {
        var values = new string[_reader.ReadLength()];
        for (var i = 0; i < values.Length; i++)
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
}
