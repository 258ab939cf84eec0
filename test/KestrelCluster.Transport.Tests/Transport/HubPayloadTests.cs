using System.Text;
using KestrelCluster.Protocol;
using KestrelCluster.Transport.Backplane;
using Microsoft.AspNetCore.SignalR;

namespace KestrelCluster.Tests.Transport;

// A Hub frame's SignalR payload, worker to worker (possibly of different versions during a reload), written and
// read through the same FrameWriter/FrameReader as the channel frames.
public sealed class HubPayloadTests
{
    [Fact]
    public void HubPayload_Write_LengthPrefixedHubThenCommandThenFields()
    {
        var payload = new HubPayloadWriter("chat", HubCommand.Ack);
        payload.WriteInt32(5);

        Assert.Equal((byte[])[4, 0, 0, 0, .. "chat"u8, (byte)HubCommand.Ack, 5, 0, 0, 0], payload.Written.ToArray());
    }

    [Fact]
    public void HubPayload_WriteThenRead_EveryFieldRoundTrips()
    {
        var payload = new HubPayloadWriter("chat ✓", HubCommand.Groups);
        payload.WriteStrings(["room 1", "ü"]);
        payload.WriteStrings(null);
        payload.WriteBytes([1, 2, 3]);
        payload.WriteMessage([new SerializedMessage("json", "{\"type\":1}"u8.ToArray()), new SerializedMessage("messagepack", new byte[] { 0x91, 0x01 })]);

        var reader = new HubPayloadReader(payload.Written.Span);
        Assert.Equal("chat ✓", reader.ReadString());
        Assert.Equal((byte)HubCommand.Groups, reader.ReadByte());
        Assert.Equal(["room 1", "ü"], reader.ReadStrings());
        Assert.Empty(reader.ReadStrings());
        Assert.Equal(new byte[] { 1, 2, 3 }, reader.ReadBytes());
        var message = reader.ReadMessage();
        Assert.Equal(["json", "messagepack"], message.Select(m => m.ProtocolName));
        Assert.Equal("{\"type\":1}", Encoding.UTF8.GetString(message[0].Serialized.Span));
        Assert.Equal(new byte[] { 0x91, 0x01 }, message[1].Serialized.ToArray());
    }

    [Fact]
    public void HubPayload_CutShort_ThrowsInvalidFrame()
    {
        var written = new HubPayloadWriter("chat", HubCommand.Ack).Written.ToArray();

        var ex = Assert.Throws<InvalidFrameException>(() =>
        {
            var reader = new HubPayloadReader(written.AsSpan(0, written.Length - 1));
            reader.ReadString();
            reader.ReadByte();
        });
        Assert.Contains("hub payload is truncated", ex.Message);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(5)]
    [InlineData(int.MaxValue)]
    public void HubPayload_LengthOutOfBounds_ThrowsInvalidFrame(int length)
    {
        byte[] bytes = [.. BitConverter.GetBytes(length), .. "chat"u8];

        var ex = Assert.Throws<InvalidFrameException>(() => new HubPayloadReader(bytes).ReadString());
        Assert.Contains($"hub payload length {length} out of bounds", ex.Message);
    }

    [Fact]
    public void HubPayload_CountLargerThanThePayload_ThrowsBeforeAllocating()
    {
        byte[] bytes = [.. BitConverter.GetBytes(1_000_000), 0, 0, 0, 0];

        Assert.Throws<InvalidFrameException>(() => new HubPayloadReader(bytes).ReadStrings());
    }

    [Fact]
    public void HubPayload_InvalidUtf8_ThrowsInvalidFrame()
    {
        byte[] bytes = [2, 0, 0, 0, 0xC3, 0x28];

        var ex = Assert.Throws<InvalidFrameException>(() => new HubPayloadReader(bytes).ReadString());
        Assert.Contains("UTF-8", ex.Message);
    }
}
